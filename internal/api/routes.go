package api

import (
	"strings"
)

// route is one endpoint of /api/v1 and the velo command it runs. The API
// runs the CLI's own command (cli.Run) with the route's arguments, so that
// an endpoint takes the names, times and sizes the command takes, refuses
// what it refuses with the same rule, takes the same lock, and answers
// with the same JSON document as the command's --json.
type route struct {
	method, path string // path with {project}, {branch} or {id} segments
	command      string // "branch create"
	summary      string
	// ref is the command's first argument: "project" ({project}),
	// "branch" ({project}/{branch}), "id", "query" (the query's branch,
	// optional) or "" (none); name, when set, is a body field that is the
	// last argument (with ref "project" it names a branch of it).
	ref, name string
	fields    []field
	// full: the call changes something or shows a secret; a read-only
	// token is refused (403) and a cookie session must send its CSRF token.
	full bool
	// json: the command takes --json; the answer is its document.
	// Without it the answer is 204 No Content.
	json bool
	// report: the command prints its document and then fails when the
	// document says something is wrong (velo doctor exits 1 on a failed
	// check); the answer is the document all the same (200), and the
	// document says what failed.
	report bool
}

// field is a body field (POST) or query parameter (GET, DELETE) and the
// command's flag it becomes.
type field struct {
	name, kind, help string // kind: string, bool, int, strings
}

// flag is the field's flag: its name with dashes.
func (f field) flag() string { return "--" + strings.ReplaceAll(f.name, "_", "-") }

var (
	fForce    = field{"force", "bool", "as the command's --force"}
	fTTL      = field{"ttl", "string", "delete the branch this long from now, at the next prune (90s, 30m, 2h, 1d, 2w)"}
	fExpires  = field{"expires_at", "string", "delete the branch at this time (RFC 3339; no zone means UTC)"}
	fIdle     = field{"idle", "string", "suspend after this long without clients through velo serve (30s, 10m, 2h, 1d), or never"}
	fDryRun   = field{"dry_run", "bool", "list what would be done, do nothing"}
	fDays     = field{"days", "int", "older than this many days"}
	fNameBody = field{"name", "string", "the name (required)"}
	fNewName  = field{"new_name", "string", "the new name (required)"}
)

// routes are every endpoint that runs a command. TestOpenAPI checks
// openapi.json against them, and TestRoutesCoverCommands that every
// command but the host's own (setup, serve, ...) has one.
var routes = []route{
	{method: "GET", path: "/api/v1/status", command: "status", summary: "Pools, projects and branches with their live state (velo status --json)", json: true,
		fields: []field{{"size", "bool", "each branch's space on btrfs, XFS and copy too"}}},
	{method: "GET", path: "/api/v1/version", command: "version", summary: "The version of velo serving", json: true},
	{method: "GET", path: "/api/v1/doctor", command: "doctor", summary: "Doctor's findings, read-only (velo doctor --json; 200 with the findings also when a check failed, as failed says)", json: true, report: true},
	{method: "POST", path: "/api/v1/prune", command: "prune", summary: "Delete the expired branches", json: true, full: true, fields: []field{fDryRun}},

	{method: "GET", path: "/api/v1/projects", command: "project list", summary: "List projects", json: true},
	{method: "POST", path: "/api/v1/projects", command: "project create", summary: "Create a project and its main branch", json: true, full: true, name: "name",
		fields: []field{fNameBody, {"pool", "string", "ZFS pool name or absolute path"}, {"storage", "string", "zfs, btrfs, reflink or copy"},
			{"pg_version", "int", "PostgreSQL major version"}, {"from", "string", "import an existing server (libpq URL or service=NAME)"},
			{"logical", "bool", "with from: dump and restore"}, {"no_follow", "bool", "with from: one copy, promoted"},
			{"slot", "bool", "with from: a replication slot on the source"}, {"database", "strings", "with from and logical: databases to import"},
			{"listen", "string", "addresses the servers listen on besides 127.0.0.1"}, {"if_not_exists", "bool", "succeed, changing nothing, when it exists"}}},
	{method: "GET", path: "/api/v1/projects/{project}", command: "project get", summary: "A project and its branches", ref: "project", json: true},
	{method: "DELETE", path: "/api/v1/projects/{project}", command: "project delete", summary: "Delete a project", ref: "project", full: true, fields: []field{fForce}},
	{method: "POST", path: "/api/v1/projects/{project}/rename", command: "project rename", summary: "Rename a project", ref: "project", name: "new_name", full: true, fields: []field{fNewName}},
	{method: "POST", path: "/api/v1/projects/{project}/refresh", command: "project refresh", summary: "Import a logically imported project's source again", ref: "project", full: true},
	{method: "POST", path: "/api/v1/projects/{project}/set", command: "project set", summary: "Set (or with archive none, clear) the project's WAL archive in object storage, its branches' default idle timeout, or the mask its new branches get (mask none clears it)", ref: "project", json: true, full: true,
		fields: []field{{"archive", "string", "s3://BUCKET/PREFIX, or none"}, {"archive_endpoint", "string", "the URL of an S3-compatible service other than AWS"}, fIdle,
			{"mask", "string", "a SQL file on the host whose text masks every new branch of unmasked data; none clears it"}}},
	{method: "POST", path: "/api/v1/projects/{project}/wal/push", command: "wal push", summary: "Upload the project's WAL archive to its object storage now", ref: "project", json: true, full: true},

	{method: "GET", path: "/api/v1/branches", command: "branch list", summary: "List every branch", json: true},
	{method: "GET", path: "/api/v1/projects/{project}/branches", command: "branch list", summary: "List a project's branches", ref: "project", json: true},
	{method: "POST", path: "/api/v1/projects/{project}/branches", command: "branch create", summary: "Create a branch (point-in-time with pitr, from a snapshot with from_snapshot)", ref: "project", name: "name", json: true, full: true,
		fields: []field{fNameBody, {"parent", "string", "branch to copy (default PROJECT/main)"}, {"pitr", "string", "recover to a point in time (RFC 3339 or '2 hours ago') or an LSN (0/3000060)"},
			{"from_snapshot", "string", "clone this snapshot (ID or unique prefix)"}, fTTL, fExpires,
			{"new_password", "bool", "a superuser password of its own"}, {"if_not_exists", "bool", "succeed, changing nothing, when it exists with the same parent"},
			{"mask", "string", "a SQL file on the host to mask the branch with (default: the project's)"}}},
	{method: "GET", path: "/api/v1/branches/{project}/{branch}", command: "branch get", summary: "A branch: its server, space and files", ref: "branch", json: true},
	{method: "DELETE", path: "/api/v1/branches/{project}/{branch}", command: "branch delete", summary: "Delete a branch", ref: "branch", full: true, fields: []field{fForce}},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/reset", command: "branch reset", summary: "Replace a branch's data with its parent's current data", ref: "branch", json: true, full: true, fields: []field{fForce}},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/start", command: "branch start", summary: "Start a branch's server", ref: "branch", json: true, full: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/stop", command: "branch stop", summary: "Stop a branch's server", ref: "branch", json: true, full: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/restart", command: "branch restart", summary: "Restart a branch's server", ref: "branch", json: true, full: true},
	{method: "GET", path: "/api/v1/branches/{project}/{branch}/password", command: "branch password", summary: "A branch's connection details with its password", ref: "branch", json: true, full: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/set", command: "branch set", summary: "Change a branch's expiry or idle timeout", ref: "branch", json: true, full: true,
		fields: []field{fTTL, fExpires, {"no_expiry", "bool", "the branch never expires"}, fIdle}},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/protect", command: "branch protect", summary: "Protect a branch", ref: "branch", json: true, full: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/unprotect", command: "branch unprotect", summary: "Remove a branch's protection", ref: "branch", json: true, full: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/rename", command: "branch rename", summary: "Rename a branch (new_name is the branch's new name in its project)", ref: "branch", name: "new_name", json: true, full: true, fields: []field{fNewName}},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/promote", command: "branch promote", summary: "Make a branch its project's main", ref: "branch", json: true, full: true,
		fields: []field{{"name", "string", "what the old main is called afterwards"}}},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/restore", command: "branch restore", summary: "Put a branch back to a moment of its history (to) or one of its snapshots (snapshot), keeping its port and password", ref: "branch", json: true, full: true,
		fields: []field{{"to", "string", "the moment to go back to (RFC 3339 or '2 hours ago'; within GET .../wal's earliest_pitr and latest_pitr), or an LSN (0/3000060)"},
			{"snapshot", "string", "one of the branch's snapshots (ID or unique prefix)"}, {"name", "string", "what the branch keeping the replaced state is called"},
			{"discard", "bool", "drop the replaced state instead of keeping it as a branch"}}},
	// A diff shows rows of the branch's data, which a read-only token
	// cannot otherwise read (it gets no password): full.
	{method: "GET", path: "/api/v1/branches/{project}/{branch}/diff", command: "diff", summary: "What a branch changed since it was made, or how it differs from other: schema and rows (velo diff --json)", ref: "branch", name: "other", json: true, full: true,
		fields: []field{{"other", "string", "compare with this branch (PROJECT/BRANCH) as it is now, instead of the branch's origin"},
			{"database", "string", "the database compared (default: an imported project's source database, else postgres)"},
			{"schema_only", "bool", "the schema alone"}, {"data_only", "bool", "the rows alone"},
			{"table", "strings", "this table only: TABLE or SCHEMA.TABLE (repeat the parameter for more)"},
			{"rows", "int", "up to this many sample rows per table"}, {"grants", "bool", "compare privileges too"}}},
	{method: "GET", path: "/api/v1/branches/{project}/{branch}/snapshots", command: "snapshot list", summary: "A branch's snapshots", ref: "branch", json: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/snapshots", command: "snapshot create", summary: "Snapshot a branch", ref: "branch", json: true, full: true,
		fields: []field{{"label", "string", "a label to remember it by"}, {"push", "bool", "also store it in the project's archive bucket"}}},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/snapshots/cleanup", command: "snapshot cleanup", summary: "Delete a branch's snapshots older than days", ref: "branch", json: true, full: true, fields: []field{fDays, fDryRun}},
	{method: "GET", path: "/api/v1/branches/{project}/{branch}/wal", command: "wal info", summary: "A branch's WAL archive and the range point-in-time branches reach", ref: "branch", json: true},
	{method: "POST", path: "/api/v1/branches/{project}/{branch}/wal/cleanup", command: "wal cleanup", summary: "Delete archived WAL older than days", ref: "branch", json: true, full: true, fields: []field{fDays, fDryRun}},

	{method: "GET", path: "/api/v1/snapshots", command: "snapshot list", summary: "Every snapshot", json: true},
	{method: "POST", path: "/api/v1/snapshots/{id}/push", command: "snapshot push", summary: "Store a snapshot (ID or unique prefix) in its project's archive bucket", ref: "id", json: true, full: true},
	{method: "DELETE", path: "/api/v1/snapshots/{id}", command: "snapshot delete", summary: "Delete a snapshot (ID or unique prefix)", ref: "id", full: true},
	{method: "GET", path: "/api/v1/wal", command: "wal info", summary: "Every branch's WAL archive", json: true},
	{method: "POST", path: "/api/v1/wal/push", command: "wal push", summary: "Upload every project's WAL archive to its object storage now", json: true, full: true},
}

// notRouted are the commands with no endpoint, and why: they act on the
// host or the terminal, or must not be reachable from the network.
var notRouted = map[string]string{
	"setup": "host setup, as root", "service-file": "host setup", "man": "terminal", "completion bash": "terminal",
	"completion zsh": "terminal", "completion fish": "terminal", "completion powershell": "terminal", "completion": "terminal", "help": "terminal",
	"serve": "the server itself", "ui": "prints the page's link", "token create": "makes tokens; on the host only",
	"token list": "tokens are managed on the host only", "token revoke": "tokens are managed on the host only",
	"branch env": "shell variables; GET .../password has the same",
	"wal fetch":  "Postgres's restore_command on the host; reads no state",
}

// args is the command line of r for the path values pv and the body's or
// query's values.
func (r route) args(pv func(string) string, vals map[string]any) []string {
	args := strings.Fields(r.command)
	if r.json {
		args = append(args, "--json")
	}
	for _, f := range r.fields {
		v, ok := vals[f.name]
		if !ok || f.name == r.name {
			continue
		}
		switch x := v.(type) {
		case bool:
			if x {
				args = append(args, f.flag())
			}
		case string:
			args = append(args, f.flag()+"="+x)
		case int64:
			args = append(args, f.flag()+"="+itoa(x))
		case []string:
			for _, s := range x {
				args = append(args, f.flag()+"="+s)
			}
		}
	}
	// After "--" nothing is a flag: a name that starts with a dash is
	// refused by the name's rule, never read as a flag.
	args = append(args, "--")
	var name string
	if r.name != "" {
		name, _ = vals[r.name].(string)
	}
	switch r.ref {
	case "project":
		if r.command == "branch create" {
			return append(args, pv("project")+"/"+name)
		}
		args = append(args, pv("project"))
	case "branch":
		ref := pv("project") + "/" + pv("branch")
		args = append(args, ref)
		if r.command == "branch rename" {
			return append(args, pv("project")+"/"+name)
		}
	case "id":
		args = append(args, pv("id"))
	}
	if r.name != "" && (name != "" || r.command != "diff") {
		// diff's other branch is optional; every other name is required,
		// and an empty one is refused by the command's rule.
		args = append(args, name)
	}
	return args
}

// Commands are the velo commands the API has an endpoint for, or has
// none for on purpose (notRouted), for the CLI's test that every command
// is one or the other.
func Commands() map[string]bool {
	m := map[string]bool{}
	for _, r := range routes {
		m[r.command] = true
	}
	for c := range notRouted {
		m[c] = true
	}
	return m
}
