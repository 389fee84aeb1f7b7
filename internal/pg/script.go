package pg

import (
	"fmt"
	"regexp"
	"strings"
)

// Statement is one statement of a SQL script: its text from the end of
// the one before (comments included), the line that text begins on and
// the line its first word is on (1-based).
type Statement struct {
	SQL         string
	Start, Line int
}

var dollarTag = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)?\$`)

// SplitScript cuts a SQL script at the semicolons that end its
// statements, as psql does: not inside quotes ('...', E'...', "..."),
// dollar quoting ($$...$$, $tag$...$tag$), or comments (-- to the end of
// the line, /* */, nested). Empty statements are dropped.
func SplitScript(script string) []Statement {
	var out []Statement
	start, line, startLine := 0, 1, 1
	depth := 0 // parentheses: a semicolon inside them (CREATE RULE ... (a; b)) does not end
	emit := func(end int) {
		text := script[start:end]
		if rest := skipComments(text); rest != "" {
			out = append(out, Statement{SQL: text, Start: startLine, Line: startLine + strings.Count(text[:len(text)-len(rest)], "\n")})
		}
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case c == '\n':
			line++
		case c == '-' && i+1 < len(script) && script[i+1] == '-':
			for i < len(script) && script[i] != '\n' {
				i++
			}
			if i < len(script) {
				line++
			}
		case c == '/' && i+1 < len(script) && script[i+1] == '*':
			n := 1
			i += 2
			for ; i < len(script) && n > 0; i++ {
				switch {
				case script[i] == '\n':
					line++
				case script[i] == '/' && i+1 < len(script) && script[i+1] == '*':
					n++
					i++
				case script[i] == '*' && i+1 < len(script) && script[i+1] == '/':
					n--
					i++
				}
			}
			i--
		case c == '\'' || c == '"':
			escapes := c == '\'' && i > 0 && (script[i-1] == 'E' || script[i-1] == 'e')
			for i++; i < len(script); i++ {
				if script[i] == '\n' {
					line++
				}
				if escapes && script[i] == '\\' {
					i++
					continue
				}
				if script[i] == c {
					if i+1 < len(script) && script[i+1] == c {
						i++
						continue
					}
					break
				}
			}
		case c == '$':
			if i > 0 && isIdentChar(script[i-1]) {
				continue // $1 or a name with a dollar
			}
			tag := dollarTag.FindString(script[i:])
			if tag == "" {
				continue
			}
			end := strings.Index(script[i+len(tag):], tag)
			if end < 0 {
				line += strings.Count(script[i:], "\n")
				i = len(script)
				continue
			}
			line += strings.Count(script[i:i+len(tag)+end], "\n")
			i += len(tag) + end + len(tag) - 1
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case c == ';' && depth == 0:
			emit(i + 1)
			start, startLine = i+1, line
		}
	}
	emit(len(script))
	return out
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipComments is s from its first word on: "" when s holds spaces,
// semicolons and comments alone.
func skipComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n;")
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
			} else {
				return ""
			}
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[i+2:]
			} else {
				return ""
			}
		default:
			return s
		}
	}
}

// LineOf is the script's line (1-based) of the 1-based character
// position pos in stmt.SQL, where Postgres's error position points; the
// statement's first line when pos is not in it.
func LineOf(stmt Statement, pos int32) int {
	r := []rune(stmt.SQL)
	if pos < 1 || int(pos) > len(r) {
		return stmt.Line
	}
	return stmt.Start + strings.Count(string(r[:pos-1]), "\n")
}

// ScriptSection is the part of a script that runs in one database, as
// psql's \connect DBNAME lines (\c DBNAME) divide it: the lines before the
// first run in the default database ("" here). Text is the whole script
// with every other section's lines blank, so that SplitScript's line
// numbers stay the file's.
type ScriptSection struct {
	Database string
	Text     string
}

var connectLine = regexp.MustCompile(`^\s*\\(c|connect)(\s+(.*?))?\s*$`)

// SplitConnects divides script at its \connect lines, one section per
// database named (a database named twice gets one section holding both
// parts), in the order first named. A \connect must name one database and
// nothing else (no role, host or port: the script runs as the superuser
// on the one server). Such a line inside a quoted string or a comment
// that spans lines is taken as a \connect too, as it would be by psql
// only outside them: a script is not expected to hold one there.
func SplitConnects(script string) ([]ScriptSection, error) {
	lines := strings.Split(script, "\n")
	owner := make([]int, len(lines)) // the section of each line; -1 for a \connect line
	index := map[string]int{"": 0}
	names := []string{""}
	cur := 0
	for i, l := range lines {
		m := connectLine.FindStringSubmatch(strings.TrimSuffix(l, "\r"))
		if m == nil {
			owner[i] = cur
			continue
		}
		owner[i] = -1
		db := m[3]
		if strings.HasPrefix(db, `"`) && strings.HasSuffix(db, `"`) && len(db) >= 2 {
			db = strings.ReplaceAll(db[1:len(db)-1], `""`, `"`)
		} else if db == "" || strings.ContainsAny(db, " \t'\"") {
			return nil, fmt.Errorf("line %d: \\%s names one database and nothing else, as in \\connect shop or \\connect \"my db\"", i+1, m[1])
		}
		n, ok := index[db]
		if !ok {
			n = len(names)
			index[db] = n
			names = append(names, db)
		}
		cur = n
	}
	var out []ScriptSection
	for n, db := range names {
		text := make([]string, len(lines))
		for i, l := range lines {
			if owner[i] == n {
				text[i] = l
			}
		}
		out = append(out, ScriptSection{Database: db, Text: strings.Join(text, "\n")})
	}
	return out, nil
}
