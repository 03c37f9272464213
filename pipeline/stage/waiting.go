package stage

import "context"

type waitingKey struct{}

// WithWaiting returns ctx carrying report, which Waiting calls. The runner gives each stage's context one that turns
// the message into a progress event of that stage.
func WithWaiting(ctx context.Context, report func(what string)) context.Context {
	return context.WithValue(ctx, waitingKey{}, report)
}

// Waiting tells the run's progress what the stage is about to wait for, such as "the pod identity webhook
// Deployment to roll out (2 replicas, up to 5m)", so that a wait of minutes is not silent. It does nothing when ctx
// carries no reporter (a stage called outside a run).
func Waiting(ctx context.Context, what string) {
	if report, ok := ctx.Value(waitingKey{}).(func(string)); ok {
		report(what)
	}
}
