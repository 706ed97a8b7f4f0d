package ratelimit

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Two scripts implement GCRA in integer microseconds on the Redis server
// clock. Both are lean on purpose: TIME once, the fewest commands, and writes
// only for an allowed request (a denied request writes nothing). A key holds
// its limit's theoretical arrival time (TAT, µs since the epoch, written with
// %d: Lua's default number format keeps only 14 digits) and expires (PX) when
// that time passes, when it stops mattering. Lua numbers are doubles: every
// value stays below 2^53 (see maxTolerance). Both accept a trailing "now"
// argument in µs replacing TIME that only this package's tests send
// (Limiter.scriptNow); production decisions always use the server clock.

// gcraScript decides several limits of one subject, all-or-nothing: TIME,
// one MGET, arithmetic, a SET PX per key when allowed. A limit whose TAT has
// passed (or whose key is absent) gets the precomputed PX of a fresh key, so
// the common case converts no number to a string but the TAT itself.
//
//	KEYS[i]                      state key of limit i (one {subject} hash tag)
//	ARGV[3i-2], [3i-1], [3i]     limit i: cost × emission interval (µs),
//	                             tolerance (µs), ceil(ARGV[3i-2] / 1000) (ms)
//	ARGV[3n+1]                   tests only: now, µs
//
// Reply: {allowed 1|0, debt_1, ..., debt_n}, debt_i = TAT_i - now after the
// decision.
var gcraScript = redis.NewScript(gcraSource)

const gcraSource = `
local n = #KEYS
local now
if ARGV[3 * n + 1] then
  now = tonumber(ARGV[3 * n + 1])
else
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
local vals = redis.call('MGET', unpack(KEYS))
local out = {1}
for i = 1, n do
  local tat = tonumber(vals[i]) or now
  if tat < now then tat = now end
  vals[i] = tat
  out[i + 1] = tat - now
  if tat - now + ARGV[3 * i - 2] > tonumber(ARGV[3 * i - 1]) then out[1] = 0 end
end
if out[1] == 0 then return out end
for i = 1, n do
  local inc = tonumber(ARGV[3 * i - 2])
  local tat = vals[i]
  if tat == now then
    redis.call('SET', KEYS[i], string.format('%d', now + inc), 'PX', ARGV[3 * i])
    out[i + 1] = inc
  else
    local d = tat - now + inc
    redis.call('SET', KEYS[i], string.format('%d', now + d), 'PX', string.format('%d', (d + 999) / 1000))
    out[i + 1] = d
  end
end
return out
`

// gcra1Script decides a single limit. It first writes the state of a
// fresh subject with SET NX GET (Redis >= 7.0): when the key is absent (its
// TAT passed, the common case) that one command is the whole decision, since
// a fresh bucket always allows a cost within the burst. Otherwise SET NX
// wrote nothing and returned the TAT, and the usual decision follows.
//
//	KEYS[1]  state key
//	ARGV[1]  cost × emission interval, µs
//	ARGV[2]  tolerance, µs
//	ARGV[3]  ceil(ARGV[1] / 1000): the PX of a fresh key, ms
//	ARGV[4]  tests only: now, µs
//
// (The same ARGV layout as gcraScript's for one limit.)
//
// Reply: debt (TAT - now after the decision, >= 1) when allowed, or
// -(debt + 1) when denied.
var gcra1Script = redis.NewScript(gcra1Source)

const gcra1Source = `
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
local inc = tonumber(ARGV[1])
local old = redis.call('SET', KEYS[1], string.format('%d', now + inc), 'PX', ARGV[3], 'NX', 'GET')
if not old then return inc end
local tat = tonumber(old) or now
if tat < now then tat = now end
local d = tat - now + inc
if d > tonumber(ARGV[2]) then return now - tat - 1 end
redis.call('SET', KEYS[1], string.format('%d', now + d), 'PX', string.format('%d', (d + 999) / 1000))
return d
`

// parseReply1 decodes gcra1Script's reply into debts (len 1).
func parseReply1(v any, debts []int64) (bool, error) {
	r, ok := v.(int64)
	if !ok {
		return false, fmt.Errorf("unexpected rate limit script reply of type %T", v)
	}
	if r > 0 {
		debts[0] = r
		return true, nil
	}
	debts[0] = -r - 1
	return false, nil
}

// parseReply decodes the script's reply into debts (len n).
func parseReply(v any, debts []int64) (bool, error) {
	vals, ok := v.([]any)
	if !ok || len(vals) != len(debts)+1 {
		return false, fmt.Errorf("unexpected rate limit script reply of type %T", v)
	}
	allowed, ok := vals[0].(int64)
	if !ok {
		return false, fmt.Errorf("unexpected rate limit script reply element of type %T", vals[0])
	}
	for i := range debts {
		d, ok := vals[i+1].(int64)
		if !ok {
			return false, fmt.Errorf("unexpected rate limit script reply element of type %T", vals[i+1])
		}
		debts[i] = d
	}
	return allowed == 1, nil
}
