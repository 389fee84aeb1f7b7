package hostsetup

import "testing"

func TestHostParsers(t *testing.T) {
	rel := "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
	if got := osRelease(rel); got != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("osRelease = %q", got)
	}
	if got := osRelease("PRETTY_NAME=Plain\n"); got != "Plain" {
		t.Errorf("osRelease unquoted = %q", got)
	}
	if got := osRelease("ID=x\n"); got != "" {
		t.Errorf("osRelease without PRETTY_NAME = %q", got)
	}
	fsys := kernelFilesystems("nodev\tsysfs\n\text4\n\tbtrfs\nnodev\tfuse\n\tfuseblk\n")
	for _, name := range []string{"btrfs", "fuse", "ext4"} {
		if !fsys[name] {
			t.Errorf("kernelFilesystems lacks %s: %v", name, fsys)
		}
	}
	if fsys["xfs"] || fsys["nodev"] {
		t.Errorf("kernelFilesystems has too much: %v", fsys)
	}
}

func TestChecks(t *testing.T) {
	checks := Checks(map[string]bool{})
	var subjects []string
	for _, c := range checks {
		subjects = append(subjects, c.Subject)
		if c.Failed {
			t.Errorf("with no driver in use, %s failed: %+v", c.Subject, c)
		}
	}
	if len(subjects) != 3 || subjects[0] != "os" || subjects[1] != "filesystems" || subjects[2] != "tools" {
		t.Errorf("Checks subjects = %v, want os, filesystems, tools", subjects)
	}
}
