package daemon

import (
	"net/url"
	"testing"
)

// A function's versions and a workflow's revisions, newest first, as the
// console's pages show them: a config change is a version, a deleted
// function's versions stay listed, a definition created again as it was
// is one revision.
func TestVersionsAndRevisions(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "ver", "echo-wat", url.Values{"env": {"TOKEN=s3cret"}})
	if _, changed, err := c.UpdateFunction(ctx, "ver", url.Values{"timeout": {"3s"}}); err != nil || !changed {
		t.Fatalf("update: %v %v", changed, err)
	}
	deploy(t, c, "ver", "echo-wat", nil)
	vs, err := c.FunctionVersions(ctx, "ver")
	if err != nil || len(vs) != 3 || vs[0].Version != 3 || vs[1].Version != 2 || vs[2].Version != 1 {
		t.Fatalf("versions: %+v, %v", vs, err)
	}
	if vs[1].Limits.Timeout != "3s" || vs[2].Env["TOKEN"] == "s3cret" || vs[2].Env["TOKEN"] == "" {
		t.Fatalf("version 2 timeout %q, version 1 env %v: want 3s, the value masked", vs[1].Limits.Timeout, vs[2].Env)
	}
	if err := c.DeleteFunction(ctx, "ver"); err != nil {
		t.Fatal(err)
	}
	if vs, err := c.FunctionVersions(ctx, "ver"); err != nil || len(vs) != 3 {
		t.Fatalf("versions after delete: %d, %v", len(vs), err)
	}
	_, err = c.FunctionVersions(ctx, "never")
	apiError(t, err, 404, "not_found", `no function "never", and none was deployed`)

	one := "apiVersion: sluice/v1\nkind: Workflow\nname: rev\ntasks:\n  a: { run: noop }\n"
	two := "apiVersion: sluice/v1\nkind: Workflow\nname: rev\ntasks:\n  b: { run: noop }\n"
	for _, src := range []string{one, two, one} {
		if _, _, err := c.CreateWorkflow(ctx, "rev", []byte(src)); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := c.WorkflowRevisions(ctx, "rev", true)
	if err != nil || len(ws) != 2 || ws[0].Version != 2 || ws[1].Version != 1 || ws[0].Source != two || ws[1].Source != one {
		t.Fatalf("revisions: %+v, %v", ws, err)
	}
	if ws, err := c.WorkflowRevisions(ctx, "rev", false); err != nil || ws[0].Source != "" {
		t.Fatalf("revisions without source: %+v, %v", ws, err)
	}
	_, err = c.WorkflowRevisions(ctx, "never", false)
	apiError(t, err, 404, "not_found", `no workflow "never", and none was created`)
}
