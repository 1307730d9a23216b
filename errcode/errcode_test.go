package errcode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/registry"
	"github.com/sluicehq/sluice/testutil"
)

// The README's table of error codes lists exactly the registry's codes,
// each with its status.
func TestREADMEListsEveryCode(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testutil.Root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| ((?:`\\w+`(?:, )?)+) \\| (\\d{3}) \\|")
	listed := map[errcode.Code]int{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		n, _ := strconv.Atoi(m[2])
		for _, code := range regexp.MustCompile("`(\\w+)`").FindAllStringSubmatch(m[1], -1) {
			listed[errcode.Code(code[1])] = n
		}
	}
	for _, code := range errcode.Codes() {
		if listed[code] != code.Status() {
			t.Errorf("README lists code %q with status %d, want %d", code, listed[code], code.Status())
		}
	}
	for code := range listed {
		if !code.Known() {
			t.Errorf("README lists code %q, which the registry does not have", code)
		}
	}
}

// Every error a component raises to a user has the code the API answers
// it with, through any wrapping.
func TestComponentErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want errcode.Code
	}{
		{host.ErrTimeout, errcode.Timeout},
		{host.ErrCanceled, errcode.Canceled},
		{host.ErrMemoryLimit, errcode.MemoryLimit},
		{host.ErrTrap, errcode.Trap},
		{host.ErrExit, errcode.Exit},
		{host.ErrFunctionFailed, errcode.FunctionError},
		{host.ErrOutputTooLarge, errcode.OutputTooLarge},
		{host.ErrInputTooLarge, errcode.InputTooLarge},
		{host.ErrBusy, errcode.Busy},
		{host.ErrMemoryBudget, errcode.MemoryBudget},
		{host.ErrOutOfFiles, errcode.OutOfFiles},
		{host.ErrInvalidConfig, errcode.InvalidArgument},
		{host.ErrInvalidModule, errcode.InvalidModule},
		{host.ErrNoABI, errcode.NoABI},
		{host.ErrMemoryTooSmall, errcode.MemoryTooSmall},
		{&host.CallError{Function: "f", Kind: host.ErrTrap, Detail: "unreachable"}, errcode.Trap},
		{registry.ErrNotFound, errcode.NotFound},
		{catalog.ErrNotFound, errcode.NotFound},
		{catalog.ErrConflict, errcode.Conflict},
		{catalog.ErrInvalid, errcode.InvalidArgument},
		{eventlog.ErrNotConnected, errcode.Unavailable},
		{eventlog.ErrClosed, errcode.Unavailable},
		{eventlog.ErrTooLarge, errcode.PayloadTooLarge},
		{eventlog.ErrInvalidName, errcode.InvalidArgument},
		{context.DeadlineExceeded, errcode.Unavailable},
		{context.Canceled, errcode.Canceled},
		{fmt.Errorf("something else"), errcode.Internal},
	} {
		if got := errcode.Of(fmt.Errorf("doing a thing: %w", tc.err)); got != tc.want {
			t.Errorf("%v: code %s, want %s", tc.err, got, tc.want)
		}
	}
}

// A refused delete answers 409 conflict with its dependents as data, an
// overload 503 with its Retry-After, a busy function 503 with the
// default Retry-After, and a failed body read 400 unless the reader said
// better.
func TestWrite(t *testing.T) {
	inUse := &catalog.InUseError{Kind: "function", Name: "price", Dependents: []catalog.Dependent{{Kind: "workflow", Name: "order"}, {Kind: "trigger", Name: "t1"}}}
	w := httptest.NewRecorder()
	errcode.Write(w, fmt.Errorf("while deleting: %w", inUse))
	var body struct {
		Error      string
		Code       errcode.Code
		Dependents []catalog.Dependent
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusConflict || body.Code != errcode.Conflict || !reflect.DeepEqual(body.Dependents, inUse.Dependents) ||
		body.Error != `while deleting: function "price" is used by workflow "order" and trigger "t1": delete them first, or delete with --force` {
		t.Fatalf("%d %+v", w.Code, body)
	}
	w = httptest.NewRecorder()
	errcode.Write(w, &errcode.Error{Code: errcode.Overloaded, Msg: "busy", RetryAfter: 1500 * time.Millisecond})
	if w.Code != 503 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("overload: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	w = httptest.NewRecorder()
	errcode.Write(w, &host.CallError{Function: "f", Kind: host.ErrBusy})
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("busy: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	w = httptest.NewRecorder()
	errcode.Write(w, host.ErrTrap)
	if w.Code != http.StatusBadGateway || w.Header().Get("Retry-After") != "" {
		t.Fatalf("trap: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	slow := &errcode.Error{Code: errcode.RequestTimeout, Msg: "slow"}
	if err := errcode.ReadError("input", fmt.Errorf("read: %w", slow)); err != slow {
		t.Fatalf("a body read's own answer was lost: %v", err)
	}
	if code := errcode.Of(errcode.ReadError("input", fmt.Errorf("unexpected EOF"))); code != errcode.BadRequest {
		t.Fatalf("a failed read: %s", code)
	}
}

// Every code has an error status, and no source makes a code of its own:
// what the API answers is what the registry (and so the README) lists.
func TestNoCodeOutsideTheRegistry(t *testing.T) {
	for _, c := range errcode.Codes() {
		if c.Status() < 400 || c.Status() > 599 {
			t.Errorf("code %s: status %d", c, c.Status())
		}
	}
	made := regexp.MustCompile(`errcode\.Code\("`)
	err := filepath.WalkDir(testutil.Root(t), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "build" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if made.Match(src) {
			t.Errorf("%s makes an error code outside the registry: add it to errcode and the README", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
