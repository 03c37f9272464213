package setup

import (
	"context"
	"time"

	"github.com/irsa-anywhere/irsa/pipeline/issuer/s3public"
	"github.com/irsa-anywhere/irsa/pipeline/lock"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// LockOptions say how a mutating run takes the cluster's lock.
type LockOptions struct {
	// Command names the run in the lock ("apply", "teardown", "bind", "unbind").
	Command string
	// Create makes the issuer bucket, which holds the lock, when it does not exist yet (apply); without it a run
	// with no bucket takes no lock.
	Create bool
	// Check, when set, runs before Create makes the bucket: the run's own checks (a plan), so that a run that
	// would fail before its first write still makes nothing.
	Check func(ctx context.Context) error
	// Wait is how long to wait for another run's lock; 0 fails at once, naming the holder.
	Wait time.Duration
	// TTL overrides lock.DefaultTTL (tests).
	TTL time.Duration
	// Progress is told that the run waits, and for whom.
	Progress func(string)
}

// Lock takes the cluster's lock (package lock) in its issuer bucket, making the bucket first when o.Create is set and
// it is missing; created lists that change, which belongs to the issuer stage's report. release deletes the lock; it
// is never nil. A bucket that is not (yet) this cluster's takes no lock: the issuer stage adopts it or refuses it.
func (e *Env) Lock(ctx context.Context, o LockOptions) (release func(context.Context) error, created []stage.Change, err error) {
	noop := func(context.Context) error { return nil }
	host, ok := e.IssuerHost().(*s3public.Host)
	if !ok {
		return noop, nil, nil
	}
	lockable, created, err := host.PrepareLock(ctx, o.Create, o.Check)
	if err != nil || !lockable {
		return noop, created, err
	}
	l, err := lock.Acquire(ctx, lock.Options{
		S3: e.AWS.LockS3, Bucket: host.Bucket, Cluster: e.Target.ClusterName, Command: o.Command,
		Wait: o.Wait, TTL: o.TTL, Progress: o.Progress,
	})
	if err != nil || l == nil {
		return noop, created, err
	}
	e.Log.Debug("took the lock", "holder", l.Holder().String())
	return l.Release, created, nil
}
