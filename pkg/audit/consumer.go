package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Consumer reads the stream with a consumer group: at-least-once delivery,
// entries are acknowledged only after the caller stored them. On the first
// Read it re-reads its own pending entries (delivered before a crash, never
// acknowledged), then new ones.
type Consumer struct {
	Client redis.UniversalClient
	Stream string
	Group  string
	// Name is this consumer's name inside the group (e.g. the host name).
	Name string
	// Count is the most entries one Read returns (default 100).
	Count int64
	// Block is how long Read waits for new entries (default 1s).
	Block time.Duration
	// ClaimIdle: entries another consumer of the group has held this long
	// without acknowledging (a replica that died) are claimed by this one
	// at the start of each pending phase (default 5m; negative: never).
	ClaimIdle time.Duration

	pendingDone bool
	claimed     bool
}

// Message is one stream entry: its id and either the parsed event or the
// reason it was refused (Err wraps ErrInvalid; the entry's bytes are never
// kept).
type Message struct {
	ID    string
	Event Event
	Err   error
}

// EnsureGroup creates the stream and the group (reading from the start of
// the stream) unless they exist.
func (c *Consumer) EnsureGroup(ctx context.Context) error {
	err := c.Client.XGroupCreateMkStream(ctx, c.Stream, c.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("audit: create consumer group: %w", err)
	}
	return nil
}

// Read returns the next entries: first this consumer's pending ones, then
// new ones (waiting up to Block). No entry: nil, nil.
func (c *Consumer) Read(ctx context.Context) ([]Message, error) {
	if !c.pendingDone {
		if !c.claimed {
			c.claimed = true
			if err := c.claim(ctx); err != nil {
				return nil, err
			}
		}
		msgs, err := c.read(ctx, "0")
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		c.pendingDone = true
	}
	return c.read(ctx, ">")
}

// Rewind makes the next Read start over with the pending entries (after a
// failed store, and periodically to claim a dead replica's entries).
func (c *Consumer) Rewind() { c.pendingDone, c.claimed = false, false }

// claim moves entries idle longer than ClaimIdle to this consumer.
func (c *Consumer) claim(ctx context.Context) error {
	idle := c.ClaimIdle
	if idle == 0 {
		idle = 5 * time.Minute
	}
	if idle < 0 {
		return nil
	}
	start := "0-0"
	for range 100 { // bounded: at most 100 × Count entries per pending phase
		_, next, err := c.Client.XAutoClaimJustID(ctx, &redis.XAutoClaimArgs{Stream: c.Stream, Group: c.Group,
			Consumer: c.Name, MinIdle: idle, Start: start, Count: max(c.Count, 100)}).Result()
		if err != nil {
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				return c.EnsureGroup(ctx)
			}
			return fmt.Errorf("audit: claim idle entries: %w", err)
		}
		if next == "0-0" || next == start {
			return nil
		}
		start = next
	}
	return nil
}

func (c *Consumer) read(ctx context.Context, id string) ([]Message, error) {
	count := c.Count
	if count <= 0 {
		count = 100
	}
	block := c.Block
	if block <= 0 {
		block = time.Second
	}
	args := &redis.XReadGroupArgs{Group: c.Group, Consumer: c.Name, Streams: []string{c.Stream, id}, Count: count, Block: -1}
	if id == ">" {
		args.Block = block
	}
	res, err := c.Client.XReadGroup(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			if gerr := c.EnsureGroup(ctx); gerr != nil {
				return nil, gerr
			}
		}
		return nil, fmt.Errorf("audit: read stream: %w", err)
	}
	var out []Message
	for _, s := range res {
		for _, m := range s.Messages {
			ev, perr := Parse(m.Values)
			out = append(out, Message{ID: m.ID, Event: ev, Err: perr})
		}
	}
	return out, nil
}

// PendingDone reports whether the consumer has re-read its pending entries
// and now reads new ones.
func (c *Consumer) PendingDone() bool { return c.pendingDone }

// Ack acknowledges stored entries.
func (c *Consumer) Ack(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := c.Client.XAck(ctx, c.Stream, c.Group, ids...).Err(); err != nil {
		return fmt.Errorf("audit: ack: %w", err)
	}
	return nil
}
