package lock

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
)

var moto *motoserver.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "irsa-lock-test-")
	if err != nil {
		panic(err)
	}
	moto, err = motoserver.StartProcess(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock tests need moto_server:", err)
		os.Exit(1)
	}
	code := m.Run()
	moto.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newBucket(t *testing.T, versioned bool) (*s3.Client, string) {
	t.Helper()
	ca, err := os.ReadFile(moto.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := awsclient.New(context.Background(), awsclient.Options{Region: "eu-west-1", EndpointURL: moto.URL, CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	bucket := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if _, err := c.S3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &bucket,
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}}); err != nil {
		t.Fatal(err)
	}
	if versioned {
		if _, err := c.S3.PutBucketVersioning(t.Context(), &s3.PutBucketVersioningInput{Bucket: &bucket,
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
	}
	return c.S3, bucket
}

func readHolder(t *testing.T, c *s3.Client, bucket string) *Holder {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(Key)})
	if awsclient.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	data, _ := io.ReadAll(out.Body)
	var h Holder
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("lock object %s: %v", data, err)
	}
	return &h
}

func TestLock(t *testing.T) {
	t.Parallel()
	c, bucket := newBucket(t, true)
	ctx := t.Context()
	opts := func(cmd string, wait time.Duration) Options {
		return Options{S3: c, Bucket: bucket, Cluster: "c1", Command: cmd, Wait: wait, TTL: 900 * time.Millisecond, Poll: 50 * time.Millisecond}
	}

	// Held and renewed: after three TTLs, a second run still finds it held and, not waiting, fails naming it.
	first, err := Acquire(ctx, opts("apply", 0))
	if err != nil || first == nil {
		t.Fatalf("first Acquire: %v, %v", first, err)
	}
	time.Sleep(2700 * time.Millisecond) // three TTLs: without renewal the lock would have expired twice
	_, err = Acquire(ctx, opts("teardown", 0))
	if err == nil || !strings.Contains(err.Error(), "locked by another irsa run") || !strings.Contains(err.Error(), "irsa apply") {
		t.Fatalf("second Acquire while the first renews: %v; want a refusal naming the holder", err)
	}
	if h := readHolder(t, c, bucket); h == nil || h.Command != "apply" || !h.Expires.After(time.Now()) {
		t.Errorf("lock object %+v: want the first run's, not expired", h)
	}

	// A waiting run gets it once the holder releases it, and tells who it waited for once.
	var mu sync.Mutex
	var told []string
	waiting := opts("bind", 10*time.Second)
	waiting.Progress = func(m string) { mu.Lock(); told = append(told, m); mu.Unlock() }
	got := make(chan *Lock)
	go func() {
		l, err := Acquire(ctx, waiting)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(300 * time.Millisecond)
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	second := <-got
	mu.Lock()
	if len(told) != 1 || !strings.Contains(told[0], "held by") {
		t.Errorf("progress while waiting: %q; want one message naming the holder", told)
	}
	mu.Unlock()
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Released means gone with every version this run wrote: a versioned bucket keeps no trace of the lock.
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
		t.Errorf("after release: %d versions and %d delete markers of the lock left", len(vs.Versions), len(vs.DeleteMarkers))
	}

	// A killed run's lock (never renewed, expired) is taken over.
	stale, _ := json.Marshal(Holder{ID: "alice@laptop pid 42", Command: "apply", Since: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)})
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(Key), Body: strings.NewReader(string(stale))}); err != nil {
		t.Fatal(err)
	}
	told = nil
	o := opts("apply", 0)
	o.Progress = func(m string) { told = append(told, m) }
	third, err := Acquire(ctx, o)
	if err != nil || third == nil || len(told) != 1 || !strings.Contains(told[0], "alice@laptop pid 42") {
		t.Fatalf("Acquire over an expired lock: %v, %v, told %q", third, err, told)
	}
	if h := readHolder(t, c, bucket); h == nil || h.ID != HolderID() {
		t.Errorf("lock after takeover: %+v", h)
	}
	if err := third.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Of several runs that try at the same moment, exactly one holds the lock at a time: each records when it held it,
// and no two holds overlap.
func TestLockExcludesConcurrentRuns(t *testing.T) {
	t.Parallel()
	c, bucket := newBucket(t, false)
	ctx := t.Context()
	type hold struct{ from, to time.Time }
	var mu sync.Mutex
	var holds []hold
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := Acquire(ctx, Options{S3: c, Bucket: bucket, Cluster: "c1", Command: "apply", Wait: 30 * time.Second, Poll: 20 * time.Millisecond})
			if err != nil || l == nil {
				t.Errorf("Acquire: %v, %v", l, err)
				return
			}
			h := hold{from: time.Now()}
			time.Sleep(200 * time.Millisecond)
			h.to = time.Now()
			if err := l.Release(ctx); err != nil {
				t.Error(err)
			}
			mu.Lock()
			holds = append(holds, h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, a := range holds {
		for j, b := range holds {
			if i < j && a.from.Before(b.to) && b.from.Before(a.to) {
				t.Errorf("holds %d and %d overlap: %v-%v and %v-%v", i, j, a.from, a.to, b.from, b.to)
			}
		}
	}
	if len(holds) != 4 {
		t.Errorf("%d of 4 runs got the lock", len(holds))
	}
}

// Without the bucket there is nothing to lock: Acquire says so with nil, and the caller makes the bucket first.
func TestLockWithoutBucket(t *testing.T) {
	t.Parallel()
	c, _ := newBucket(t, false)
	l, err := Acquire(t.Context(), Options{S3: c, Bucket: "no-such-bucket", Cluster: "c1", Command: "teardown"})
	if l != nil || err != nil {
		t.Errorf("Acquire without a bucket: %v, %v; want nil, nil", l, err)
	}
}

// A lock left by a killed run on this machine (same host, boot and PID namespace; its PID no longer runs) is taken
// over at once, before it expires; the same lock of a live process is not.
func TestLockOfAKilledProcessIsTakenOver(t *testing.T) {
	t.Parallel()
	c, bucket := newBucket(t, false)
	ctx := t.Context()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	put := func(pid int) {
		body, _ := json.Marshal(Holder{ID: "killed", Process: thisProcess(), PID: pid, Command: "apply", Since: time.Now(), Expires: time.Now().Add(time.Hour)})
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(Key), Body: strings.NewReader(string(body))}); err != nil {
			t.Fatal(err)
		}
	}
	put(os.Getppid()) // alive: go test itself
	if _, err := Acquire(ctx, Options{S3: c, Bucket: bucket, Cluster: "c1", Command: "apply"}); err == nil || !strings.Contains(err.Error(), "locked by another irsa run: killed") {
		t.Fatalf("Acquire over a live process's lock: %v; want a refusal", err)
	}
	put(dead.Process.Pid)
	var told []string
	l, err := Acquire(ctx, Options{S3: c, Bucket: bucket, Cluster: "c1", Command: "apply", Progress: func(m string) { told = append(told, m) }})
	if err != nil || l == nil || len(told) != 1 || !strings.Contains(told[0], "its process is gone") {
		t.Fatalf("Acquire over a killed process's lock: %v, %v, told %q", l, err, told)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
