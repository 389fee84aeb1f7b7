package api

import (
	"embed"
	"io/fs"
	"net/http"
)

// web is the page: plain HTML, CSS and JavaScript, nothing from a CDN.
//
//go:embed web
var web embed.FS

// page serves the page at /ui/ and the login link at /ui/login. The
// files themselves hold no data; what the page shows it fetches from
// the API with its session cookie.
func (s *Server) page(mux *http.ServeMux) {
	files, _ := fs.Sub(web, "web")
	static := http.StripPrefix("/ui/", http.FileServer(http.FS(files)))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No script, style or connection from anywhere but here; no framing.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /ui/login", s.auth.login)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
}
