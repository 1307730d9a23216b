package api

import (
	"fmt"
	"net/http"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/internal/catalog"
)

// functionVersions handles GET /v1/functions/{name}/versions: the
// versions the catalog keeps of a function (catalog.KeepVersions, deleted
// ones too), newest first, each as GET /v1/functions/{name} shows it but
// without this daemon's counters; env values masked unless reveal_env.
func (s *Server) functionVersions(w http.ResponseWriter, r *http.Request, b *Backend) {
	reveal, err := revealEnv(r)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	name := r.PathValue("name")
	fns := b.Catalog.FunctionVersions(name)
	if len(fns) == 0 {
		errcode.Write(w, fmt.Errorf("%w: no function %q, and none was deployed", catalog.ErrNotFound, name))
		return
	}
	views := make([]FunctionView, 0, len(fns))
	for _, fn := range fns {
		views = append(views, b.view(r.Context(), fn, false, reveal))
	}
	errcode.WriteJSON(w, http.StatusOK, views)
}

// workflowRevisions handles GET /v1/workflows/{name}/revisions: every
// definition a workflow name has had, newest first, each once (as first
// created); with source=true, each with its YAML.
func (s *Server) workflowRevisions(w http.ResponseWriter, r *http.Request, b *Backend) {
	source, err := boolParam(r, "source")
	if err != nil {
		errcode.Write(w, err)
		return
	}
	name := r.PathValue("name")
	wfs := b.Catalog.WorkflowRevisions(name)
	if len(wfs) == 0 {
		errcode.Write(w, fmt.Errorf("%w: no workflow %q, and none was created", catalog.ErrNotFound, name))
		return
	}
	views := make([]WorkflowView, 0, len(wfs))
	for _, wf := range wfs {
		views = append(views, b.workflowView(wf, source))
	}
	errcode.WriteJSON(w, http.StatusOK, views)
}
