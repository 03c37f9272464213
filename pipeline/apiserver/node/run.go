package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Run is the body of `irsa node patch-apiserver` and `irsa node restore-apiserver` (command is
// PatchCommand or RestoreCommand): it runs Patch or Restore and writes the Result as one JSON line
// to out, also on failure, for the stage to read from the pod's log. When opts.Verify is nil and verifyTimeout is
// positive, the change is verified against this node's apiserver (LocalCheck) and undone if it fails.
func Run(ctx context.Context, command string, opts Options, verifyTimeout time.Duration, out io.Writer) error {
	opts.defaults()
	var res Result
	var err error
	if opts.Verify == nil && verifyTimeout > 0 {
		var current []byte
		current, err = readManifest(opts.ManifestPath)
		if err == nil {
			var check LocalCheck
			check, err = NewLocalCheck(current, verifyTimeout)
			opts.Verify = check.Verify
		}
	}
	if err == nil {
		switch command {
		case PatchCommand:
			res, err = Patch(ctx, opts)
		case RestoreCommand:
			res, err = Restore(ctx, opts)
		default:
			err = fmt.Errorf("node command %q: want %s or %s", command, PatchCommand, RestoreCommand)
		}
	}
	res.Manifest = opts.ManifestPath
	if err != nil {
		res.Error = err.Error()
	}
	line, merr := json.Marshal(res)
	if merr != nil {
		return errors.Join(err, fmt.Errorf("encode result: %w", merr))
	}
	if _, werr := fmt.Fprintf(out, "%s\n", line); werr != nil {
		return errors.Join(err, fmt.Errorf("write result: %w", werr))
	}
	return err
}

// LastResult finds the Result Run printed: the last line of the node pod's log that is a JSON Result.
func LastResult(logs []byte) (Result, error) {
	var found *Result
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var r Result
		if err := json.Unmarshal(line, &r); err == nil && r.Manifest != "" {
			found = &r
		}
	}
	if found == nil {
		return Result{}, fmt.Errorf("no JSON result line in the node pod's log")
	}
	return *found, nil
}
