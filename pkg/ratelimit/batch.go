package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batchWorkers is how many pipelines may be in flight at once.
const batchWorkers = 2

// batcher sends concurrent decisions to Redis together: each worker takes
// one waiting decision, adds every other one already waiting (up to max)
// and runs them as one pipeline of EVALSHAs.
type batcher struct {
	client  redis.UniversalClient
	reqs    chan *batchReq
	max     int
	timeout time.Duration
	quit    chan struct{}
	wg      sync.WaitGroup
}

type batchReq struct {
	script *redis.Script
	keys   []string
	args   []any
	done   chan batchResp // buffered: a caller that gave up never blocks a worker
}

type batchResp struct {
	val any
	err error
}

func newBatcher(client redis.UniversalClient, maxBatch int, timeout time.Duration) *batcher {
	b := &batcher{
		client:  client,
		reqs:    make(chan *batchReq, maxBatch*batchWorkers),
		max:     maxBatch,
		timeout: timeout,
		quit:    make(chan struct{}),
	}
	b.wg.Add(batchWorkers)
	for range batchWorkers {
		go b.run()
	}
	return b
}

// do queues one script run and waits for its reply, ctx or Close.
func (b *batcher) do(ctx context.Context, script *redis.Script, keys []string, args []any) (any, error) {
	r := &batchReq{script: script, keys: keys, args: args, done: make(chan batchResp, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.quit:
		return nil, ErrClosed
	}
	select {
	case resp := <-r.done:
		return resp.val, resp.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.quit:
		return nil, ErrClosed
	}
}

func (b *batcher) run() {
	defer b.wg.Done()
	batch := make([]*batchReq, 0, b.max)
	cmds := make([]*redis.Cmd, 0, b.max)
	for {
		select {
		case <-b.quit:
			return
		case r := <-b.reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < b.max {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		cmds = b.exec(batch, cmds[:0])
		clear(batch)
		clear(cmds)
	}
}

func (b *batcher) exec(batch []*batchReq, cmds []*redis.Cmd) []*redis.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	if len(batch) == 1 {
		r := batch[0]
		c := r.script.Run(ctx, b.client, r.keys, r.args...)
		r.done <- batchResp{c.Val(), c.Err()}
		return cmds
	}
	pipe := b.client.Pipeline()
	for _, r := range batch {
		cmds = append(cmds, r.script.EvalSha(ctx, pipe, r.keys, r.args...))
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	var retry redis.Pipeliner
	for i, r := range batch {
		if redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
			// Redis lost its script cache (restart, SCRIPT FLUSH): EVAL
			// loads it again, in one more pipeline; later ones use EVALSHA.
			if retry == nil {
				retry = b.client.Pipeline()
			}
			cmds[i] = r.script.Eval(ctx, retry, r.keys, r.args...)
		}
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
	for i, r := range batch {
		r.done <- batchResp{cmds[i].Val(), cmds[i].Err()}
	}
	return cmds
}

func (b *batcher) close() {
	close(b.quit)
	b.wg.Wait()
}
