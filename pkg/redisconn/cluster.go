package redisconn

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// reloadOnFailure makes a Cluster client reload its slot map (in the
// background) whenever a command or pipeline fails for another reason than
// a Redis reply: a node that is dead, frozen or unreachable. go-redis reloads
// the map by itself only on MOVED, ASK and READONLY replies and once the map
// is 10 s old, and a dead master answers nothing: after a master crashes the
// client would keep dialling it for up to 10 s after its replica took over
// (measured: BENCHMARKS.md "Redis Cluster failover"). A reload is one
// CLUSTER SLOTS on a live node; go-redis runs at most one at a time and then
// waits 200 ms, so a failing cluster costs a few reloads a second per client.
type reloadOnFailure struct{ c *redis.ClusterClient }

var _ redis.Hook = reloadOnFailure{}

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) check(err error) {
	if nodeFailure(err) {
		h.c.ReloadState(context.Background())
	}
}

// nodeFailure reports whether err says a node could not be reached or did
// not answer in time (connection refused or reset, EOF, a timeout), as
// opposed to no error, a Redis reply (redis.Nil, MOVED, NOSCRIPT, …), the
// caller cancelling or a closed client.
func nodeFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var re redis.Error
	return !errors.As(err, &re)
}
