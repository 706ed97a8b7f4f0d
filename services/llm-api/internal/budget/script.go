package budget

import "github.com/redis/go-redis/v9"

// The scripts keep every key of one subject in one hash slot (the
// subject's tag), so each decides atomically on Redis Cluster too.
// Numbers: Lua's are doubles; every token and nano-USD figure stays below
// 2^53 (MaxTokens, MaxRequestTokens, MaxUSD, MaxUSDPerMillion), so the
// integer arithmetic is exact. The minute rate is GCRA: a theoretical
// arrival time (TAT, integer µs on Redis's clock, rounded up) that each
// token moves by 60e6/limit µs; a request fits while TAT − now stays within
// one minute.
//
// KEYS (reserve and settle): [1] the reservation record, then per scope
// four keys: its TAT, its day hash and its month hash (fields t: tokens,
// c: nano-USD), and its limits hash — an administrator's override of a
// user's budgets or an API key's own budgets and models, written by
// llm-api when they change (fields set, tpm, tpd, tpmo, cpd, cpmo and
// models, a newline-separated list; absent: the limits in ARGV apply).

// reserveScript decides and charges a reservation.
//
// ARGV: [1] prompt tokens p (the bound), [2] n, [3] the client's cap (0:
// none), [4] the default cap (0 with no client cap: no completion at all,
// as for embeddings), [5] prompt nano-USD per token, [6]
// completion nano-USD per token, [7] the record's TTL in ms, [8] the day's
// and [9] the month's expiry (unix s), [10] the number of scopes, [11] the
// record's fields as one string (ledger identity), [12] the model, then
// per scope five limits (0: none): tokens per minute, per day, per month,
// nano-USD per day, per month.
//
// Returns {1, cap, tokens, nano, hdrLimit, hdrRemaining, hdrResetMs},
// {-1, scope} when the scope's models exclude the model, or
// {0, scope (1-based), window, limit, used, requested, retryMs}; window is
// "tpm", "tpd", "tpmo", "cpd" or "cpmo"; retryMs −1: never (the request
// alone exceeds the limit).
var reserveScript = redis.NewScript(`
local function I(x) return string.format('%d', x) end
local p, n, ccap, dcap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pp, cp = tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl, dayx, monx, ns = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local MIN = 60000000
local pcost = p * pp
local xmax, lim = math.huge, nil
local st = {}
local function consider(x, w)
  if x < xmax then xmax = x; lim = w end
end
local model = ARGV[12]
for i = 1, ns do
  local a = 12 + (i - 1) * 5
  local s = {tpm = tonumber(ARGV[a+1]), tpd = tonumber(ARGV[a+2]), tpmo = tonumber(ARGV[a+3]),
             cpd = tonumber(ARGV[a+4]), cpmo = tonumber(ARGV[a+5]),
             k = 1 + (i - 1) * 4}
  st[i] = s
  local o = redis.call('HMGET', KEYS[s.k+4], 'set', 'tpm', 'tpd', 'tpmo', 'cpd', 'cpmo', 'models')
  if o[1] then
    s.tpm, s.tpd, s.tpmo = tonumber(o[2] or '0'), tonumber(o[3] or '0'), tonumber(o[4] or '0')
    s.cpd, s.cpmo = tonumber(o[5] or '0'), tonumber(o[6] or '0')
    if o[7] and o[7] ~= '' then
      local allowed = false
      for m in string.gmatch(o[7], '[^\n]+') do
        if m == model then allowed = true end
      end
      if not allowed then return {-1, i} end
    end
  end
  if s.tpm > 0 then
    s.T = MIN / s.tpm
    local tat = tonumber(redis.call('GET', KEYS[s.k+1]) or '0')
    if tat < now then tat = now end
    s.tat = tat
    local room = math.floor((now + MIN - tat) / s.T)
    consider(math.floor((room - p) / n), {i, 'tpm', s.tpm, s.tpm - room, room})
  end
  local function window(limit, key, field, name, per)
    if limit <= 0 then return end
    local v = redis.call('HMGET', key, field, 'o' .. field)
    local used, out = tonumber(v[1] or '0'), tonumber(v[2] or '0')
    local room = limit - used
    if per == 0 then
      if pcost > room then consider(-1, {i, name, limit, used, room, out}) end
    else
      local fixed = (field == 't') and p or pcost
      consider(math.floor((room - fixed) / (n * per)), {i, name, limit, used, room, out})
    end
  end
  window(s.tpd, KEYS[s.k+2], 't', 'tpd', 1)
  window(s.tpmo, KEYS[s.k+3], 't', 'tpmo', 1)
  window(s.cpd, KEYS[s.k+2], 'c', 'cpd', cp)
  window(s.cpmo, KEYS[s.k+3], 'c', 'cpmo', cp)
end
local x
if ccap == 0 and dcap == 0 then
  -- no completion (embeddings): the prompt alone must fit
  if xmax < 0 then x = nil else x = 0 end
elseif ccap > 0 then
  if xmax < ccap then x = nil else x = ccap end
else
  x = math.min(dcap, xmax)
  if x < 1 then x = nil end
end
if not x then
  local inflight = 0
  local want = (ccap > 0) and ccap or ((dcap == 0) and 0 or 1)
  local w = lim
  local tokens = p + want * n
  local requested = tokens
  local retry = -1
  if w[2] == 'cpd' or w[2] == 'cpmo' then requested = pcost + want * n * cp end
  if w[2] == 'tpm' then
    if tokens <= w[3] then
      local s = st[w[1]]
      retry = math.ceil((s.tat + tokens * s.T - now - MIN) / 1000)
      if retry < 1 then retry = 1 end
    end
  elseif requested <= w[3] then
    retry = ((w[2] == 'tpd' or w[2] == 'cpd') and dayx or monx) * 1000 - math.floor(now / 1000)
    -- part of what is used is reserved by requests in flight, and would
    -- fit once they settle below their reservations: retry soon
    if w[6] and w[6] > 0 and requested <= w[3] - (w[4] - w[6]) then
      retry = 1000
      inflight = w[6]
    end
  end
  return {0, w[1], w[2], w[3], w[4], requested, retry, inflight}
end
local tokens = p + x * n
local nano = pcost + x * n * cp
redis.call('HSET', KEYS[1], 'f', ARGV[11], 'tok', I(tokens), 'nano', I(nano), 'at', I(now), 'n', I(ns))
redis.call('PEXPIRE', KEYS[1], I(ttl))
local hl, hr, hreset = -1, math.huge, 0
for i = 1, ns do
  local s = st[i]
  if s.tpm > 0 then
    local tat = math.ceil(s.tat + tokens * s.T)
    redis.call('SET', KEYS[s.k+1], I(tat), 'PX', I(math.ceil((tat - now) / 1000) + 1000))
    redis.call('HSET', KEYS[1], 'T' .. i, string.format('%.17g', s.T))
    local room = math.floor((now + MIN - tat) / s.T)
    if room < hr then hl, hr, hreset = s.tpm, room, math.ceil((tat - now) / 1000) end
  end
  local wd, wm = (s.tpd > 0 or s.cpd > 0), (s.tpmo > 0 or s.cpmo > 0)
  redis.call('HSET', KEYS[1], 'w' .. i, ((s.tpm > 0) and '1' or '0') .. (wd and '1' or '0') .. (wm and '1' or '0'),
    'kd' .. i, KEYS[s.k+2], 'km' .. i, KEYS[s.k+3])
  if wd then
    redis.call('HINCRBY', KEYS[s.k+2], 't', I(tokens))
    redis.call('HINCRBY', KEYS[s.k+2], 'c', I(nano))
    redis.call('HINCRBY', KEYS[s.k+2], 'ot', I(tokens))
    redis.call('HINCRBY', KEYS[s.k+2], 'oc', I(nano))
    redis.call('EXPIREAT', KEYS[s.k+2], I(dayx + 86400))
  end
  if wm then
    redis.call('HINCRBY', KEYS[s.k+3], 't', I(tokens))
    redis.call('HINCRBY', KEYS[s.k+3], 'c', I(nano))
    redis.call('HINCRBY', KEYS[s.k+3], 'ot', I(tokens))
    redis.call('HINCRBY', KEYS[s.k+3], 'oc', I(nano))
    redis.call('EXPIREAT', KEYS[s.k+3], I(monx + 86400))
  end
end
-- the headers describe the tightest token window: the fewest tokens
-- left, the minute rate's or a period's
for i = 1, ns do
  local s = st[i]
  for _, w in ipairs({{s.tpd, KEYS[s.k+2], dayx}, {s.tpmo, KEYS[s.k+3], monx}}) do
    if w[1] > 0 then
      local room = w[1] - tonumber(redis.call('HGET', w[2], 't') or '0')
      if room < hr then hl, hr, hreset = w[1], room, w[3] * 1000 - math.floor(now / 1000) end
    end
  end
end
if hl < 0 then hr = -1 end
return {1, x, tokens, nano, hl, hr, hreset}
`)

// settleScript replaces a reservation's charge by the actual one and
// deletes the record; nothing when the record is gone (settled or swept
// already: a settlement applies at most once).
//
// ARGV: [1] actual tokens, [2] actual nano-USD, [3] the number of scopes
// (the windows each was charged in are in the record).
//
// Returns {1, reserved tokens, reserved nano, record fields} or {0}.
var settleScript = redis.NewScript(`
local function I(x) return string.format('%d', x) end
local rec = redis.call('HMGET', KEYS[1], 'tok', 'nano', 'f')
if not rec[1] then return {0} end
local rt, rn = tonumber(rec[1]), tonumber(rec[2])
local at, an, ns = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local dt, dn = at - rt, an - rn
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, ns do
  local k = 1 + (i - 1) * 4
  local w = redis.call('HGET', KEYS[1], 'w' .. i) or '000'
  if string.sub(w, 1, 1) == '1' and dt ~= 0 then
    local T = tonumber(redis.call('HGET', KEYS[1], 'T' .. i) or '0')
    if T > 0 then
      local tat = tonumber(redis.call('GET', KEYS[k+1]) or '0')
      if tat < now then tat = now end
      tat = math.ceil(tat + dt * T)
      if tat > now then
        redis.call('SET', KEYS[k+1], I(tat), 'PX', I(math.ceil((tat - now) / 1000) + 1000))
      else
        redis.call('DEL', KEYS[k+1])
      end
    end
  end
  if string.sub(w, 2, 2) == '1' then
    redis.call('HINCRBY', KEYS[k+2], 't', I(dt))
    redis.call('HINCRBY', KEYS[k+2], 'c', I(dn))
    redis.call('HINCRBY', KEYS[k+2], 'ot', I(-rt))
    redis.call('HINCRBY', KEYS[k+2], 'oc', I(-rn))
  end
  if string.sub(w, 3, 3) == '1' then
    redis.call('HINCRBY', KEYS[k+3], 't', I(dt))
    redis.call('HINCRBY', KEYS[k+3], 'c', I(dn))
    redis.call('HINCRBY', KEYS[k+3], 'ot', I(-rt))
    redis.call('HINCRBY', KEYS[k+3], 'oc', I(-rn))
  end
end
redis.call('DEL', KEYS[1])
return {1, rt, rn, rec[3]}
`)

// sweepScript takes an unsettled reservation's record (its charge stays in
// full, no longer outstanding) and deletes it: {1, tokens, nano, fields}
// or {0} when it was settled meanwhile.
//
// KEYS: [1] the record, then per scope its day and month hashes (as the
// record names them: the sweep reads it first).
var sweepScript = redis.NewScript(`
local function I(x) return string.format('%d', x) end
local rec = redis.call('HMGET', KEYS[1], 'tok', 'nano', 'f', 'n')
if not rec[1] then return {0} end
local rt, rn, ns = tonumber(rec[1]), tonumber(rec[2]), tonumber(rec[4] or '0')
for i = 1, ns do
  local w = redis.call('HGET', KEYS[1], 'w' .. i) or '000'
  local kd, km = KEYS[1 + (i - 1) * 2 + 1], KEYS[1 + (i - 1) * 2 + 2]
  if string.sub(w, 2, 2) == '1' and kd then
    redis.call('HINCRBY', kd, 'ot', I(-rt))
    redis.call('HINCRBY', kd, 'oc', I(-rn))
  end
  if string.sub(w, 3, 3) == '1' and km then
    redis.call('HINCRBY', km, 'ot', I(-rt))
    redis.call('HINCRBY', km, 'oc', I(-rn))
  end
end
redis.call('DEL', KEYS[1])
return {1, rt, rn, rec[3]}
`)
