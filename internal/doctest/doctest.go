// Package doctest keeps the documents in docs/ honest: it reads their fenced
// code blocks so that tests run them.
//
// A block's info string is its language and then attributes:
//
//	```sh                 run by TestDocs (cmd/clinicpulse), in order, one bash per document
//	```sh norun           shown only; it may hold no curl command
//	```nginx name=single  an nginx configuration a test starts (see Nginx)
//
// The commands of a runnable sh block are checked by the comment lines that
// follow them (see Command):
//
//	curl -s "$BASE/healthz"
//	# → 200
//	# | {"status":"ok"}
//
// "# → NNN" is the HTTP status the command's (last) curl must get; every
// command that runs curl must have one. A command's exit status must be 0,
// or 28 (curl's "operation timed out") for a curl bounded with --max-time
// and a wait for one. Each "# | …" line must match a line
// of the command's standard output, in order (other lines may come between);
// "…" in it matches any text. docs/README.md tells readers the convention.
package doctest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Block is one fenced code block of a Markdown document.
type Block struct {
	File  string            // the document's path
	Line  int               // the line of the opening fence, from 1
	Lang  string            // the info string's first word: "sh", "nginx", "js", …
	Attrs map[string]string // the other words: "norun" → "", "name=single" → "single"
	Text  string            // the lines between the fences, each ending in "\n"
}

// Runs reports whether TestDocs runs the block.
func (b Block) Runs() bool {
	_, norun := b.Attrs["norun"]
	return b.Lang == "sh" && !norun
}

// Where names the block for messages: "docs/api.md:12".
func (b Block) Where() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

// Blocks returns the fenced code blocks of a Markdown document (CommonMark
// fences of three or more backticks at the start of a line; a closing
// fence is at least as long as its opening one). An unclosed fence is an
// error: the rest of the document would silently be code.
func Blocks(path string) ([]Block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Block
	var cur *Block
	var fence string
	var text strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur == nil {
			if !strings.HasPrefix(line, "```") {
				continue
			}
			ticks := len(line) - len(strings.TrimLeft(line, "`"))
			fence = line[:ticks]
			words := strings.Fields(line[ticks:])
			cur = &Block{File: path, Line: n, Attrs: map[string]string{}}
			if len(words) > 0 {
				cur.Lang = words[0]
				for _, w := range words[1:] {
					k, v, _ := strings.Cut(w, "=")
					cur.Attrs[k] = v
				}
			}
			text.Reset()
			continue
		}
		if strings.HasPrefix(line, fence) && strings.TrimLeft(line, "`") == "" {
			cur.Text = text.String()
			out = append(out, *cur)
			cur = nil
			continue
		}
		text.WriteString(line)
		text.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: the fence opened on line %d is never closed", path, cur.Line)
	}
	return out, nil
}

// Find returns the block of the document with the language and name=name.
func Find(path, lang, name string) (Block, error) {
	bs, err := Blocks(path)
	if err != nil {
		return Block{}, err
	}
	var found []Block
	for _, b := range bs {
		if b.Lang == lang && b.Attrs["name"] == name {
			found = append(found, b)
		}
	}
	switch len(found) {
	case 0:
		return Block{}, fmt.Errorf("%s: no ```%s name=%s block", path, lang, name)
	case 1:
		return found[0], nil
	}
	return Block{}, fmt.Errorf("%s: %d ```%s name=%s blocks", path, len(found), lang, name)
}

// Dir returns the repository's docs directory, found from the working
// directory (a package's, under go test) upwards to go.mod.
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "docs"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("doctest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Command is one command of a runnable sh block: a line, joined with the
// lines it continues onto (a trailing backslash), and the checks written
// under it.
type Command struct {
	Line   int      // its first line in the document
	Text   string   // as written, continuation lines included
	Status int      // "# → NNN": the HTTP status its last curl must get; 0: none
	Expect []string // "# | …" lines: patterns its output must match, in order
}

// UsesCurl reports whether the command runs curl.
func (c Command) UsesCurl() bool { return curlRE.MatchString(c.Text) }

// Bounded reports whether the command bounds its time with curl's
// --max-time (or -m), or waits for a background command (bash's wait
// returns its status): then curl's exit status 28, "operation timed out",
// is how it ends (a stream is followed for that long), not a failure.
func (c Command) Bounded() bool { return boundedRE.MatchString(c.Text) || waitRE.MatchString(c.Text) }

var (
	curlRE    = regexp.MustCompile(`(^|[\s;|&(` + "`" + `$])curl\s`)
	boundedRE = regexp.MustCompile(`\s(--max-time|-m)\s`)
	waitRE    = regexp.MustCompile(`^\s*wait\b`)
	statusRE  = regexp.MustCompile(`^# → (\d{3})$`)
)

// Commands splits a runnable block into its commands and their checks,
// which come right under their command (no blank line between). A check
// under no command, a malformed "# →" line or a curl command without one
// is an error naming the document's line.
func Commands(b Block) ([]Command, error) {
	var out []Command
	open := false // the lines above are a command and its checks
	lines := strings.Split(strings.TrimSuffix(b.Text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		n := b.Line + 1 + i
		trimmed := strings.TrimSpace(lines[i])
		var last *Command
		if open {
			last = &out[len(out)-1]
		}
		switch {
		case strings.HasPrefix(trimmed, "# →"):
			m := statusRE.FindStringSubmatch(trimmed)
			switch {
			case m == nil:
				return nil, fmt.Errorf("%s:%d: a status check is written \"# → NNN\"", b.File, n)
			case last == nil || last.Status != 0 || len(last.Expect) > 0:
				return nil, fmt.Errorf("%s:%d: \"# →\" comes right under its command, once", b.File, n)
			}
			last.Status, _ = strconv.Atoi(m[1])
		case strings.HasPrefix(trimmed, "# |"):
			if last == nil {
				return nil, fmt.Errorf("%s:%d: an output check under no command", b.File, n)
			}
			last.Expect = append(last.Expect, strings.TrimPrefix(strings.TrimPrefix(trimmed, "# |"), " "))
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			open = false // a blank line or prose for the reader
		default:
			c := Command{Line: n, Text: lines[i]}
			for strings.HasSuffix(strings.TrimRight(lines[i], " "), `\`) && i+1 < len(lines) {
				i++
				c.Text += "\n" + lines[i]
			}
			out = append(out, c)
			open = true
		}
	}
	for _, c := range out {
		if c.UsesCurl() && c.Status == 0 {
			return nil, fmt.Errorf("%s:%d: a curl command needs a \"# → NNN\" line under it", b.File, c.Line)
		}
	}
	return out, nil
}

// Match reports whether output holds lines matching the patterns, in
// order; "…" in a pattern matches any text, the rest literally, and a
// pattern matches a whole line (a trailing CR is ignored). It returns the
// first pattern that found no line.
func Match(output string, patterns []string) (missing string, ok bool) {
	lines := strings.Split(output, "\n")
	i := 0
	for _, p := range patterns {
		re := patternRE(p)
		for ; i < len(lines); i++ {
			if re.MatchString(strings.TrimSuffix(lines[i], "\r")) {
				break
			}
		}
		if i == len(lines) {
			return p, false
		}
		i++
	}
	return "", true
}

func patternRE(p string) *regexp.Regexp {
	parts := strings.Split(p, "…")
	for i, s := range parts {
		parts[i] = regexp.QuoteMeta(s)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}
