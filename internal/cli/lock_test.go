package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/internal/faultproxy"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/lock"
)

// syncBuffer is a bytes.Buffer written by one run and read by the test while the run goes on.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lockGone(t *testing.T, c *awsclient.Clients, bucket string) {
	t.Helper()
	if _, err := c.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(lock.Key)}); !awsclient.IsNotFound(err) {
		t.Errorf("the lock object is still there after the runs (err %v)", err)
	}
}

// Two applies of one cluster at once, the first one on a new cluster (it makes the bucket the lock lives in): the
// second waits for the first, saying who holds the lock, then finds nothing to do. Both succeed, the end state is a
// clean apply's (plan exits 0), and the lock is gone. The first run is held at its first write after taking the lock
// until the second says it waits, so the two really overlap.
func TestConcurrentAppliesTakeTurns(t *testing.T) {
	e := newEnv(t)
	p := withProxy(t, e)
	cfg := writeConfig(t)
	args := append(append([]string{"apply"}, e.flags()...), "-f", cfg, "-o", "json")
	type result struct {
		code        int
		out, errOut string
	}
	second := make(chan result, 1)
	var secondErr syncBuffer
	p.OnRequest(func(r faultproxy.Request) bool {
		return r.Method == "PUT" && strings.HasPrefix(r.RawQuery, "publicAccessBlock")
	}, func() {
		go func() {
			var out bytes.Buffer
			code := Main(context.Background(), args, &out, &secondErr)
			second <- result{code, out.String(), secondErr.String()}
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(secondErr.String(), "waiting for the lock of cluster "+e.cluster) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	})
	start := time.Now()
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("first apply: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	r := <-second
	t.Logf("two applies at once took %s", time.Since(start).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("second apply: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	if !strings.Contains(r.errOut, "held by "+lock.HolderID()+" (irsa apply") {
		t.Errorf("the second apply did not say who held the lock:\n%s", r.errOut)
	}
	var first, later struct{ Changed bool }
	_ = json.Unmarshal(out.Bytes(), &first)
	_ = json.Unmarshal([]byte(r.out), &later)
	if !first.Changed || later.Changed {
		t.Errorf("first apply changed %v, second %v: want the first to do everything and the second nothing", first.Changed, later.Changed)
	}
	if kinds, _ := issuerChanges(t, out.String()); len(kinds) == 0 || kinds[0] != "create s3-bucket" {
		t.Errorf("first apply's issuer changes %v: want the bucket it made for the lock first", kinds)
	}
	if code, o, eo := e.run("plan", "-f", cfg); code != 0 {
		t.Errorf("plan after two applies at once: exit %d\n%s%s", code, o, eo)
	}
	lockGone(t, clients(t), e.bucket)
}

// A run that finds the lock held and may not wait fails at once naming the holder and when the lock expires; plan
// takes no lock; a lock its holder stopped renewing (killed) is taken over once expired.
func TestLockHeldRefusesAndExpiredIsTakenOver(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	e.mustRun("apply")
	put := func(expires time.Time) {
		body, _ := json.Marshal(lock.Holder{ID: "alice@laptop pid 42", Command: "apply", Cluster: e.cluster, Since: time.Now().Add(-time.Hour), Expires: expires})
		if _, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String(lock.Key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put(time.Now().Add(time.Hour))
	for _, cmd := range [][]string{{"apply"}, {"teardown", "--yes", "--aws-only"}, {"bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}} {
		code, out, errOut := e.run(append(cmd, "--lock-timeout", "0")...)
		if code != 1 || !strings.Contains(errOut, "locked by another irsa run: alice@laptop pid 42 (irsa apply") || !strings.Contains(errOut, "s3://"+e.bucket+"/"+lock.Key) {
			t.Errorf("%s with the lock held: exit %d\n%s%s", cmd[0], code, out, errOut)
		}
	}
	if code, out, errOut := e.run("plan"); code != 0 {
		t.Errorf("plan with the lock held: exit %d\n%s%s", code, out, errOut)
	}
	put(time.Now().Add(-time.Minute))
	code, out, errOut := e.run("apply", "--lock-timeout", "0")
	if code != 0 || !strings.Contains(errOut, "took over the lock of alice@laptop pid 42") {
		t.Errorf("apply over an expired lock: exit %d\n%s%s", code, out, errOut)
	}
	lockGone(t, c, e.bucket)
	if code, _, errOut := e.run("apply", "--lock-timeout", "-1s"); code != 1 || !strings.Contains(errOut, `--lock-timeout -1s: must not be negative`) {
		t.Errorf("negative --lock-timeout: exit %d, %s", code, errOut)
	}
}
