package agent

import (
	"embed"
	"html/template"
	"net/http"
	"time"
)

//go:embed page.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"age": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Truncate(time.Second).String()
	},
}).ParseFS(pageFS, "page.html"))

// pageData is everything the status page renders.
type pageData struct {
	Self    apiSelf
	Members apiMembers
	Targets apiClusterTargets
	Moves   []Move
	Total   uint64
}

func (w *webServer) page(rw http.ResponseWriter, _ *http.Request) {
	moves, total := w.a.moves.recent(50)
	d := pageData{
		Self:    w.a.self(),
		Members: w.a.clusterMembers(),
		Targets: w.a.clusterTargets(""),
		Moves:   moves,
		Total:   total,
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(rw, d); err != nil {
		w.a.logger.Warn("rendering status page", "err", err)
	}
}
