package httpapi

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
)

// livePage is the page at /: static, it fetches api/servers and fills its
// table with textContent only, so nothing a server reports is ever parsed
// as HTML.
//
//go:embed page.html
var livePage []byte

// pageCSP allows the page's own inline style and script, by hash, and
// fetches from this origin; nothing else.
var pageCSP = "default-src 'none'; connect-src 'self'; " +
	"style-src " + inlineHashes("style") + "; script-src " + inlineHashes("script") +
	"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inlineHashes returns the CSP sources of the page's inline elem blocks.
func inlineHashes(elem string) string {
	re := regexp.MustCompile(`(?s)<` + elem + `>(.*?)</` + elem + `>`)
	out := ""
	for _, m := range re.FindAllSubmatch(livePage, -1) {
		sum := sha256.Sum256(m[1])
		if out != "" {
			out += " "
		}
		out += "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	if out == "" {
		return "'none'"
	}
	return out
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r.URL.RawQuery); err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Content-Length", strconv.Itoa(len(livePage)))
	w.Write(livePage)
}
