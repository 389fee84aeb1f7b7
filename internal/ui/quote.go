package ui

import (
	"fmt"
	"strconv"
)

// QuoteLimit bounds how long, quoted, the part of user input Quote shows is.
const QuoteLimit = 80

// Quote shows user input in a message safely: in double quotes with every
// control character and every non-ASCII character escaped (so that a
// Cyrillic 'а' or a zero-width joiner is told apart from what it mimics,
// and nothing the input holds can move the cursor or recolour the
// terminal), cut to about QuoteLimit bytes with the full length said.
func Quote(s string) string {
	q := strconv.QuoteToASCII(s)
	if len(q) <= QuoteLimit {
		return q
	}
	// The longest start of s that quotes within the limit.
	cut := ""
	for i := range s {
		if len(strconv.QuoteToASCII(s[:i])) > QuoteLimit {
			break
		}
		cut = s[:i]
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.QuoteToASCII(cut), len(s))
}
