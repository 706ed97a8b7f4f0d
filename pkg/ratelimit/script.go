package ratelimit

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// gcraScript is GCRA for every limit of one subject, all-or-nothing, in
// integer microseconds on the Redis server clock. It is lean on purpose:
// TIME once, one MGET, arithmetic, and a SET PX per key only when the request
// is allowed (a denied request writes nothing).
//
//	KEYS[i]          state key of limit i (all share the {subject} hash tag)
//	ARGV[1]          cost in cells
//	ARGV[2i], [2i+1] emission interval and tolerance of limit i, µs
//	ARGV[2n+2]       tests only: "now" in µs, replacing TIME. Production
//	                 never sends it (Limiter.scriptNow is set by this
//	                 package's tests alone), so decisions use the server clock.
//
// A key holds the limit's theoretical arrival time (TAT, µs since the epoch,
// written with %d: Lua's default number format keeps only 14 digits) and
// expires when that time passes, when it stops mattering. The reply is
// {allowed 1|0, debt_1, ..., debt_n}, debt_i = TAT_i - now after the decision.
// Lua numbers are doubles: every value stays below 2^53 (see maxTolerance).
var gcraScript = redis.NewScript(gcraSource)

const gcraSource = `
local n = #KEYS
local cost = tonumber(ARGV[1])
local now
if #ARGV > 2 * n + 1 then
  now = tonumber(ARGV[2 * n + 2])
else
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
end
local vals = redis.call('MGET', unpack(KEYS))
local out = {1}
for i = 1, n do
  local tat = tonumber(vals[i]) or now
  if tat < now then tat = now end
  local new = tat + cost * tonumber(ARGV[2 * i])
  if new - now > tonumber(ARGV[2 * i + 1]) then out[1] = 0 end
  out[i + 1] = tat - now
  vals[i] = new
end
if out[1] == 1 then
  for i = 1, n do
    local d = vals[i] - now
    redis.call('SET', KEYS[i], string.format('%d', vals[i]), 'PX', math.ceil(d / 1000))
    out[i + 1] = d
  end
end
return out
`

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
