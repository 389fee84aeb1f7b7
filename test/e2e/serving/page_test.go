package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/velohq/velo/internal/testenv"
)

// browser is one headless Chromium tab on velo serve's page.
type browser struct {
	t   *testing.T
	ctx context.Context
	// accept is what the next confirm() is answered; dialogs are the
	// messages of those asked so far.
	accept  atomic.Bool
	mu      sync.Mutex
	dialogs []string
}

// newBrowser starts Debian's chromium, headless, with a profile of its
// own and none of its calls home (this network refuses them).
func newBrowser(t *testing.T) *browser {
	bin := testenv.RequireCommand(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1500, 1000),
		chromedp.Env("TZ=UTC"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	// A confirm() blocks the click that opened it: another goroutine
	// answers it.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: b.accept.Load()})
		}
	}()
	return b
}

// run runs actions with a deadline.
func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval puts the value of a JavaScript expression into out.
func (b *browser) eval(js string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", js, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		b.t.Fatalf("browser: %s gave %s: %v", js, raw, err)
	}
}

// text is the visible text of the first element matching sel ("" for none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ''`, sel), &s)
	return s
}

// waitFor polls a JavaScript condition until it holds.
func (b *browser) waitFor(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var ok bool
		b.eval(js, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the page never showed %s; it shows:\n%s\nmessage: %s", what, b.text("body"), b.text("#message"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// grantClipboard lets the page at origin read and write the clipboard
// without asking, as a user's click on "Allow" would.
func (b *browser) grantClipboard(origin string) {
	b.t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin}); err != nil {
			b.t.Fatalf("browser: permission %s: %v", name, err)
		}
	}
}

// clipboard is the text on the browser's clipboard.
func (b *browser) clipboard() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: reading the clipboard: %v", err)
	}
	return s
}

// row is the CSS selector of a branch's row.
func row(branch string) string { return fmt.Sprintf(`tr[data-branch=%q]`, branch) }

// stateOf is the JavaScript for the state a branch's row shows.
func stateOf(branch string) string {
	return fmt.Sprintf(`((document.querySelector(%q) || {dataset: {}}).dataset.state || '')`, row(branch))
}

func (b *browser) waitState(branch, state string) {
	b.t.Helper()
	b.waitFor(branch+" "+state, fmt.Sprintf(`%s === %q && document.querySelector(%q).innerText.includes(%q)`, stateOf(branch), state, row(branch)+" td.state", state))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.run(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

func (b *browser) dialogCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.dialogs)
}

// branchState is the state velo branch get gives a branch.
func (e *env) branchState(ref string) string {
	e.T.Helper()
	var b struct{ State string }
	json.Unmarshal([]byte(e.OK("branch", "get", ref, "--json").Stdout), &b)
	return b.State
}

// TestPage drives velo serve's page in headless Chromium as a user would,
// against real Postgres on btrfs: nothing shown without the one-time
// code or with a wrong one; then, signed in from the link velo serve
// printed, the tree of branches with their state, a branch created
// through the form (psql reaches it), stopped and started, reset and deleted after
// a confirmation (cancelled once: still there), its connection string
// copied and used by psql, a snapshot label with HTML in it shown as
// text and restored to, a point-in-time branch made with the picker at
// a moment inside the range it shows, a branch's diff, and doctor's
// findings. It saves a screenshot (VELO_PAGE_SCREENSHOT=docs/page.png
// writes the README's).
func TestPage(t *testing.T) {
	e := newEnv(t, "btrfs")
	e.Create("demo")
	e.Psql("demo/main", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one')")
	e.OK("branch", "create", "demo/dev")
	e.Psql("demo/dev", "INSERT INTO t VALUES (2, 'two'); UPDATE t SET v = 'uno' WHERE id = 1")
	e.OK("branch", "create", "demo/feature", "--parent", "demo/dev", "--ttl", "2d")
	e.Psql("demo/feature", "INSERT INTO t VALUES (3, 'three'); UPDATE t SET v = 'dos' WHERE id = 2")
	e.OK("branch", "protect", "demo/main")
	// Before the harness's teardown, which deletes the project.
	t.Cleanup(func() { e.Run("branch", "unprotect", "demo/main") })
	s := e.serveAPI()
	b := newBrowser(t)
	pageURL := s.base + "/ui/"

	// Without the code, and with a wrong one: nothing of the state.
	nothing := func(how string) {
		t.Helper()
		var shown struct {
			Rows    int  `json:"rows"`
			Hidden  bool `json:"hidden"`
			Signin  bool `json:"signin"`
			HasDemo bool `json:"hasDemo"`
		}
		b.waitFor("the sign-in note", `!document.getElementById('signin').hidden`)
		b.eval(`({rows: document.querySelectorAll('tr[data-branch]').length, hidden: document.getElementById('app').hidden,
			signin: !document.getElementById('signin').hidden, hasDemo: document.body.innerText.includes('demo/')})`, &shown)
		if shown.Rows != 0 || !shown.Hidden || !shown.Signin || shown.HasDemo {
			t.Errorf("%s, the page shows %+v:\n%s", how, shown, b.text("body"))
		}
	}
	b.run(chromedp.Navigate(pageURL))
	nothing("without a code")
	b.run(chromedp.Navigate(s.base + "/ui/login?code=not-the-code"))
	if got := b.text("body"); !strings.Contains(got, "used already or has expired") {
		t.Errorf("a wrong code shows %q", got)
	}
	b.run(chromedp.Navigate(pageURL))
	nothing("after a wrong code")

	// Signed in from velo serve's link: the tree with each branch's state.
	b.run(chromedp.Navigate(s.link))
	b.waitState("demo/feature", "running")
	var loc string
	b.eval(`location.pathname + location.search`, &loc)
	if loc != "/ui/" {
		t.Errorf("after login the address is %q, want /ui/ (the code gone)", loc)
	}
	for _, want := range []string{"demo/main", "demo/dev", "demo/feature", "protected", "expires in 1d"} {
		if !strings.Contains(b.text("#tree"), want) {
			t.Errorf("the tree lacks %q:\n%s", want, b.text("#tree"))
		}
	}
	var depth string
	b.eval(fmt.Sprintf(`document.querySelector(%q).innerText`, row("demo/feature")+" td"), &depth)
	if !strings.Contains(depth, "↳") {
		t.Errorf("demo/feature is not shown under its parent: %q", depth)
	}

	// Stop and start through the page.
	b.click(row("demo/feature") + ` button[data-action="stop"]`)
	b.waitState("demo/feature", "stopped")
	if st := e.branchState("demo/feature"); st != "stopped" {
		t.Errorf("after stop on the page velo says demo/feature is %s", st)
	}
	b.click(row("demo/feature") + ` button[data-action="start"]`)
	b.waitState("demo/feature", "running")
	if got := e.Rows("demo/feature", "SELECT v FROM t ORDER BY id"); got != "uno,dos,three" {
		t.Errorf("demo/feature after start has %q", got)
	}

	// A branch created through the form, then queried with psql.
	b.run(chromedp.SetValue(chromedp.ID("create-name"), "web"))
	b.click("#create-submit")
	b.waitState("demo/web", "running")
	if got := e.Rows("demo/web", "SELECT v FROM t ORDER BY id"); got != "one" {
		t.Errorf("demo/web made on the page has %q", got)
	}

	// Its connection string: the password masked until asked for; Copy
	// puts the whole string on the clipboard, and psql connects with it.
	b.click(row("demo/web") + " a.branch-name")
	b.waitFor("the connection string", `document.getElementById('conn-url').value.startsWith('postgresql://')`)
	password := e.Conn("demo/web").Password
	var conn string
	b.eval(`document.getElementById('conn-url').value`, &conn)
	if strings.Contains(conn, password) || !strings.Contains(conn, ":***@") {
		t.Errorf("the page shows the password before it is asked for: %s", conn)
	}
	b.grantClipboard(s.base)
	b.click("#conn-copy")
	b.waitFor("copied", `document.getElementById('message').innerText === 'copied'`)
	conn = b.clipboard()
	var shown string
	b.click("#conn-show")
	b.eval(`document.getElementById('conn-url').value`, &shown)
	if shown != conn {
		t.Errorf("Show shows %q; Copy copied %q", shown, conn)
	}
	u, err := url.Parse(conn)
	if err != nil || u.User == nil {
		t.Fatalf("the page's connection string %q: %v", conn, err)
	}
	pw, _ := u.User.Password()
	if pw == "" || pw != password {
		t.Errorf("the page's connection string does not hold demo/web's password")
	}
	u.User = url.User(u.User.Username())
	psql := exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", u.String(), "-c", "SELECT count(*) FROM t")
	psql.Env = append(os.Environ(), "PGPASSWORD="+pw, "PGCONNECT_TIMEOUT=5")
	if out, err := psql.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("psql with the copied connection string: %v %s", err, out)
	}

	// The diff of demo/feature against its origin.
	b.click(row("demo/feature") + " a.branch-name")
	b.click("#diff-run")
	b.waitFor("the diff", `!!document.querySelector('#diff .diff-table')`)
	if got := b.text("#diff .diff-table"); !strings.Contains(got, "public.t") || !strings.Contains(got, "+1") || !strings.Contains(got, "~1") {
		t.Errorf("the diff of demo/feature shows %q, want public.t +1 ~1", got)
	}

	// Reset, after its confirmation: the row written since is gone.
	e.Psql("demo/web", "INSERT INTO t VALUES (4, 'four')")
	b.accept.Store(true)
	asked0 := b.dialogCount()
	b.click(row("demo/web") + ` button[data-action="reset"]`)
	b.waitFor("the reset done", `document.getElementById('message').innerText === 'reset demo/web: done'`)
	if got := e.Rows("demo/web", "SELECT v FROM t ORDER BY id"); got != "one" || b.dialogCount() != asked0+1 {
		t.Errorf("demo/web after reset on the page has %q (%d questions asked)", got, b.dialogCount()-asked0)
	}

	// Delete: cancelled once (still there), then confirmed (gone).
	b.accept.Store(false)
	asked := b.dialogCount()
	b.click(row("demo/web") + ` button[data-action="delete"]`)
	for b.dialogCount() == asked {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if r := e.Run("branch", "get", "demo/web"); r.Code != 0 {
		t.Errorf("demo/web after a cancelled delete: %s", r)
	}
	b.waitState("demo/web", "running")
	b.mu.Lock()
	last := b.dialogs[len(b.dialogs)-1]
	b.mu.Unlock()
	if last != "Delete demo/web and its data?" {
		t.Errorf("the delete asked %q", last)
	}
	b.accept.Store(true)
	b.click(row("demo/web") + ` button[data-action="delete"]`)
	b.waitFor("demo/web gone", fmt.Sprintf(`!document.querySelector(%q)`, row("demo/web")))
	if r := e.Run("branch", "get", "demo/web"); r.Code != 2 {
		t.Errorf("demo/web after a confirmed delete: %s", r)
	}

	// A snapshot whose label holds HTML, shown as text, and restored to.
	label := `<img src=x id=injected onerror="document.title='owned'">`
	snap := strings.TrimSpace(e.OK("snapshot", "create", "demo/dev", "--label", label).Stdout)
	e.Psql("demo/dev", "DELETE FROM t WHERE id = 2")
	b.click(row("demo/dev") + " a.branch-name")
	snapSel := fmt.Sprintf(`li[data-snapshot=%q]`, snap)
	b.waitFor("the snapshot", fmt.Sprintf(`!!document.querySelector(%q)`, snapSel))
	var injected bool
	b.eval(`!!document.getElementById('injected') || document.title === 'owned'`, &injected)
	if injected || !strings.Contains(b.text(snapSel), label) {
		t.Errorf("the label with HTML is not shown as text: injected=%v, %q", injected, b.text(snapSel))
	}
	b.click(snapSel + ` button[data-action="restore"]`)
	b.waitFor("the kept state", `[...document.querySelectorAll('tr[data-branch]')].some((r) => r.dataset.branch.startsWith('demo/dev-old-'))`)
	b.waitState("demo/dev", "running")
	if got := e.Rows("demo/dev", "SELECT v FROM t ORDER BY id"); got != "uno,two" {
		t.Errorf("demo/dev restored to its snapshot on the page has %q", got)
	}

	// The point-in-time picker: the range wal info gives, and a branch at
	// a moment between two commits.
	e.Psql("demo/main", "INSERT INTO t VALUES (10, 'before')")
	var t1 time.Time
	if t1, err = time.Parse("2006-01-02 15:04:05.999999-07", e.Psql("demo/main", "SELECT clock_timestamp()")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	e.Psql("demo/main", "INSERT INTO t VALUES (11, 'after')")
	b.click(row("demo/main") + " a.branch-name")
	b.waitFor("the reachable range", `document.getElementById('pit-range').dataset.branch === 'demo/main' && document.getElementById('pit-range').innerText.startsWith('reachable: ')`)
	var from string
	b.eval(`document.getElementById('pit-range').dataset.from`, &from)
	var wal []struct {
		Branch   string `json:"branch"`
		Earliest string `json:"earliest_pitr"`
	}
	json.Unmarshal([]byte(e.OK("wal", "info", "demo/main", "--json").Stdout), &wal)
	if len(wal) == 0 || wal[0].Earliest == "" {
		t.Fatalf("wal info demo/main: %+v", wal)
	}
	w1, _ := time.Parse(time.RFC3339Nano, wal[0].Earliest)
	w2, _ := time.Parse(time.RFC3339Nano, from)
	if !w1.Equal(w2) || !strings.Contains(b.text("#pit-range"), "to now") {
		t.Errorf("the picker shows %q (from %s); wal info says the range starts at %s", b.text("#pit-range"), from, wal[0].Earliest)
	}
	moment := t1.Truncate(time.Second).Add(time.Second)
	b.eval(fmt.Sprintf(`document.getElementById('pit-at').value = localValue(%q); document.getElementById('pit-at').value`, moment.UTC().Format(time.RFC3339)), new(string))
	b.run(chromedp.SetValue(chromedp.ID("pit-name"), "at-before"))
	b.click("#pit-branch")
	b.waitState("demo/at-before", "running")
	if got := e.Rows("demo/at-before", "SELECT id FROM t ORDER BY id"); got != "1,10" {
		t.Errorf("the branch made at %s with the picker has %q, want 1,10", moment, got)
	}

	// Doctor's findings: an orphan archive left behind velo's back.
	orphan := filepath.Join(e.Home, "wal", "v0000000pageorph")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "000000010000000000000001"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.click("#doctor-run")
	b.waitFor("doctor's findings", `!!document.querySelector('#doctor li.finding')`)
	if got := b.text("#doctor"); !strings.Contains(got, orphan) {
		t.Errorf("doctor on the page shows %q, want the orphan archive %s", got, orphan)
	}
	os.RemoveAll(orphan)

	// The screenshot of the page with these branches.
	b.click(row("demo/feature") + " a.branch-name")
	b.click("#diff-run")
	b.waitFor("the diff", `!!document.querySelector('#diff .diff-table')`)
	shot, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width < 1000 {
		t.Errorf("the screenshot: %v %+v", err, cfg)
	}
	out := filepath.Join(t.TempDir(), "page.png")
	if p := os.Getenv("VELO_PAGE_SCREENSHOT"); p != "" {
		out = p
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// A used link shows nothing new; velo ui's new link signs in.
	b.run(chromedp.Navigate(s.link))
	if got := b.text("body"); !strings.Contains(got, "used already") {
		t.Errorf("velo serve's link opened twice shows %q", got)
	}
	link := strings.TrimSpace(e.OK("ui").Stdout)
	b.run(chromedp.Navigate(link))
	b.waitState("demo/main", "running")
}
