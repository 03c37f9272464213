// Package lock serialises the runs that change one cluster's objects (apply, teardown, bind, unbind): a lock object
// in the cluster's issuer bucket, created with a conditional write (PutObject with If-None-Match: *), which S3
// completes for exactly one of several concurrent writers and refuses for the others with 412 PreconditionFailed
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html; Terraform's S3 backend locks the
// same way since 1.10). It needs nothing beyond the bucket irsa already owns, and every run, with a cluster or
// AWS-only, reaches AWS, so an AWS-only run and a run with a kubeconfig exclude each other too.
//
// The object holds its holder (user, host, process, command) and an expiry. The holder renews it (a conditional
// overwrite, If-Match: its ETag) every TTL/3, so a run that is killed leaves a lock that expires within TTL; a later
// run takes an expired lock over with the same conditional overwrite, so of two runs that find it expired one wins.
// A second run waits for the lock up to its wait time, saying who holds it, then fails naming the holder and when
// the lock expires.
package lock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
)

// Key is the lock object's key in the issuer bucket. The bucket policy does not make it public, and teardown counts
// it as irsa's.
const Key = ".irsa-lock.json"

// DefaultTTL is how long a lock lives without renewal: a killed run blocks others for at most this long.
const DefaultTTL = 10 * time.Minute

// Holder is the lock object's content.
type Holder struct {
	// ID names the run: user@host pid N.
	ID string `json:"holder"`
	// Process says where the holder runs (host name, boot ID, PID namespace) and PID is its process ID: a run on the
	// same machine takes over the lock of a holder that is provably gone (killed) at once instead of waiting for
	// the expiry.
	Process string `json:"process,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Token is random per Acquire: a run recognises its own lock by it (a write whose answer was lost and whose
	// retry was refused because the first attempt had succeeded).
	Token   string    `json:"token"`
	Command string    `json:"command"`
	Cluster string    `json:"cluster"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
}

func (h Holder) String() string {
	return fmt.Sprintf("%s (irsa %s, since %s, expires %s)", h.ID, h.Command, h.Since.UTC().Format(time.RFC3339), h.Expires.UTC().Format(time.RFC3339))
}

// Options say whose lock to take and how.
type Options struct {
	S3      *s3.Client
	Bucket  string
	Cluster string
	Command string
	// Wait is how long to wait for another run's lock before failing; 0 fails at once.
	Wait time.Duration
	// TTL is the lock's lifetime without renewal; 0 means DefaultTTL.
	TTL time.Duration
	// Poll is the wait between two tries; 0 means 2 s.
	Poll time.Duration
	// Progress, when set, is told once per holder that the run waits for it.
	Progress func(msg string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Lock is a held lock.
type Lock struct {
	o        Options
	holder   Holder
	mu       sync.Mutex
	etag     string
	versions []string
	stop     chan struct{}
	done     chan struct{}
}

// HolderID names this process.
func HolderID() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())
}

// Acquire takes the lock, waiting up to Wait for a holder to release it. It returns nil, nil when the bucket does not
// exist (the caller makes it first when it needs the lock). A lock whose holder did not renew it before it expired is
// taken over.
func Acquire(ctx context.Context, o Options) (*Lock, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	l := &Lock{o: o, holder: Holder{ID: HolderID(), Process: thisProcess(), PID: os.Getpid(), Token: hex.EncodeToString(token), Command: o.Command, Cluster: o.Cluster}}
	deadline := o.Now().Add(o.Wait)
	told := ""
	for {
		ok, held, heldETag, err := l.try(ctx, "")
		switch {
		case err != nil && awsclient.ErrorCode(err) == "NoSuchBucket":
			return nil, nil
		case err != nil:
			l.abandon(ctx)
			return nil, err
		case ok:
			l.start()
			return l, nil
		}
		if held == nil {
			continue // released between our write and our read
		}
		if gone := held.gone(); gone || !o.Now().Before(held.Expires) {
			// Expired, or its holder is gone: take it over, conditionally on the object being the one read.
			why := "it expired"
			if gone {
				why = "its process is gone"
			}
			if ok, _, _, err := l.try(ctx, heldETag); err != nil {
				l.abandon(ctx)
				return nil, err
			} else if ok {
				if o.Progress != nil {
					o.Progress("took over the lock of " + held.String() + ": " + why)
				}
				l.start()
				return l, nil
			}
			continue
		}
		if !o.Now().Before(deadline) {
			return nil, fmt.Errorf("cluster %q is locked by another irsa run: %s; wait for it to finish and run again (or give --lock-timeout to wait longer); if that run is gone, the lock expires at %s, or delete s3://%s/%s to release it now",
				o.Cluster, held, held.Expires.UTC().Format(time.RFC3339), o.Bucket, Key)
		}
		if o.Progress != nil && told != held.ID+held.Since.String() {
			told = held.ID + held.Since.String()
			o.Progress("waiting for the lock of cluster " + o.Cluster + ", held by " + held.String())
		}
		t := time.NewTimer(o.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			l.abandon(ctx)
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// thisProcess names the process's machine and PID namespace: the host name, the kernel's boot ID (a reboot ends
// every holder) and the PID namespace (a container's PIDs are its own). Empty when any is unknown: such a holder is
// never judged gone.
func thisProcess() string {
	host, err := os.Hostname()
	if err != nil {
		return ""
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return host + "/" + strings.TrimSpace(string(boot)) + "/" + ns
}

// gone says whether h is a process of this machine and PID namespace that no longer runs.
func (h Holder) gone() bool {
	if h.Process == "" || h.PID <= 0 || h.Process != thisProcess() {
		return false
	}
	return !processRuns(h.PID)
}

// try writes the lock object: created if absent (ifMatch empty), or over the object with ETag ifMatch. When another
// run has it, held is its holder (nil if it vanished meanwhile) with its ETag.
func (l *Lock) try(ctx context.Context, ifMatch string) (ok bool, held *Holder, heldETag string, err error) {
	now := l.o.Now()
	l.mu.Lock()
	if l.stop == nil { // not held yet: a renewal keeps the time the run took it
		l.holder.Since = now
	}
	l.holder.Expires = now.Add(l.o.TTL)
	body, _ := json.Marshal(l.holder)
	l.mu.Unlock()
	in := &s3.PutObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key), Body: bytes.NewReader(body), ContentType: aws.String("application/json")}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := l.o.S3.PutObject(ctx, in)
	if err == nil {
		l.mu.Lock()
		l.etag = aws.ToString(out.ETag)
		if v := aws.ToString(out.VersionId); v != "" {
			l.versions = append(l.versions, v)
		}
		l.mu.Unlock()
		return true, nil, "", nil
	}
	if !conflict(err) {
		return false, nil, "", fmt.Errorf("take the lock s3://%s/%s: %w", l.o.Bucket, Key, err)
	}
	got, err := l.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key)})
	if awsclient.IsNotFound(err) {
		return false, nil, "", nil
	}
	if err != nil {
		return false, nil, "", fmt.Errorf("read the lock s3://%s/%s: %w", l.o.Bucket, Key, err)
	}
	defer got.Body.Close()
	data, err := io.ReadAll(got.Body)
	if err != nil {
		return false, nil, "", fmt.Errorf("read the lock s3://%s/%s: %w", l.o.Bucket, Key, err)
	}
	var h Holder
	if err := json.Unmarshal(data, &h); err != nil {
		// Not ours to parse: treat it as expired, so a conditional overwrite replaces exactly this object.
		h = Holder{ID: "unreadable lock object"}
	}
	if h.Token == l.holder.Token {
		// Our own write (a create, a renewal or a takeover): its answer was lost and the SDK's retry was refused
		// because the first attempt had succeeded.
		l.mu.Lock()
		l.etag = aws.ToString(got.ETag)
		if v := aws.ToString(got.VersionId); v != "" {
			l.versions = append(l.versions, v)
		}
		l.mu.Unlock()
		return true, nil, "", nil
	}
	return false, &h, aws.ToString(got.ETag), nil
}

// abandon deletes the lock object if this run's write made it although Acquire is giving up (cancelled, or a write
// whose outcome is unknown): it is recognised by its token. It runs even when ctx is cancelled.
func (l *Lock) abandon(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	got, err := l.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key)})
	if err != nil {
		return
	}
	defer got.Body.Close()
	data, _ := io.ReadAll(got.Body)
	var h Holder
	if json.Unmarshal(data, &h) != nil || h.Token != l.holder.Token {
		return
	}
	_, _ = l.o.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key), VersionId: got.VersionId})
}

// conflict says whether err is S3 refusing a conditional write: 412 when the condition failed, 409 when another
// conditional write to the key was in flight.
func conflict(err error) bool {
	switch awsclient.ErrorCode(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	return strings.Contains(err.Error(), "StatusCode: 412")
}

// Holder is who holds l.
func (l *Lock) Holder() Holder {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder
}

func (l *Lock) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.renew()
}

// renew overwrites the lock every TTL/3 while the run lasts, conditionally on it still being ours.
func (l *Lock) renew() {
	defer close(l.done)
	t := time.NewTicker(l.o.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL/3)
			l.mu.Lock()
			etag := l.etag
			l.mu.Unlock()
			_, _, _, _ = l.try(ctx, etag) // a failed renewal is retried; the run itself decides nothing on it
			cancel()
		}
	}
}

// Release stops the renewal and deletes the lock object if it is still this run's: every version this run wrote in a
// versioned bucket (deleting a version leaves no delete marker), the object otherwise. A lock that is gone (teardown
// deleted the bucket) is released.
func (l *Lock) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.versions) > 0 {
		var errs []error
		for _, v := range l.versions {
			_, err := l.o.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key), VersionId: aws.String(v)})
			if err != nil && !awsclient.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("release the lock s3://%s/%s: %w", l.o.Bucket, Key, err)
		}
		return nil
	}
	head, err := l.o.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key)})
	if awsclient.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release the lock s3://%s/%s: %w", l.o.Bucket, Key, err)
	}
	if aws.ToString(head.ETag) != l.etag {
		return nil // taken over after it expired: not ours to delete
	}
	if _, err := l.o.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &l.o.Bucket, Key: aws.String(Key)}); err != nil && !awsclient.IsNotFound(err) {
		return fmt.Errorf("release the lock s3://%s/%s: %w", l.o.Bucket, Key, err)
	}
	return nil
}
