package budget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Scope is one set of budgets a request is charged against: the caller's
// own (its roles' or an admin's override), its API key's, its per-model
// budget. Across scopes the tightest decides.
type Scope struct {
	// Kind names the scope in answers and the ledger: "user", "key" or
	// "model".
	Kind string
	// Part is its key part inside the subject's slot: "u", "k:<key id>",
	// "m:<model>".
	Part   string
	Limits Limits
	// Stored: the scope's limits may be stored in Redis (SetLimits: an
	// administrator's override of a user, an API key's own budget and
	// models), which then replace Limits.
	Stored bool
}

// Request is what a reservation needs.
type Request struct {
	// ID is the reservation's server-generated id (NewID; never the
	// client's request id): the ledger's idempotency key.
	ID      string
	Subject string
	KeyID   string // "" for a JWT caller
	Model   string
	Scopes  []Scope
	// PromptTokens is the prompt's upper bound (bound.go); N the number
	// of choices; Cap the client's completion cap (0: none, DefaultCap
	// clamped to what the scopes still allow). Cap and DefaultCap both 0:
	// no completion (embeddings), the prompt alone is reserved.
	PromptTokens, N, Cap, DefaultCap int64
	Price                            Price
}

// Reservation is a granted request: the completion cap to send upstream
// and what was charged, until Settle replaces it by the actual usage.
type Reservation struct {
	Request
	// Cap is the completion cap to send upstream (max_completion_tokens).
	Cap int64
	// Tokens and Nano are the charge: PromptTokens + Cap×N, and its cost.
	Tokens, Nano int64
	// Headers describe the caller's tightest token window after the
	// charge (Limit < 0: none).
	Headers Headers
	// Day is the UTC day (YYYY-MM-DD) the reservation is charged to.
	Day    string
	keys   []string
	scopes int // scopes sent to Redis (0: none, nothing to settle there)
}

// Headers are OpenAI's x-ratelimit-*-tokens values.
type Headers struct {
	Limit, Remaining int64
	Reset            time.Duration
}

// Denial is a refused reservation: which scope and window, as OpenAI
// words it ("Limit …, Used …, Requested …").
type Denial struct {
	Scope                  string // Kind of the scope
	Window                 string // tpm, tpd, tpmo, cpd, cpmo
	Limit, Used, Requested int64
	// RetryAfter is when the request could fit again; < 0: never (the
	// request alone exceeds the limit).
	RetryAfter time.Duration
	// InFlight is what requests still in flight have reserved in the
	// window; when they settle below it the request may fit (RetryAfter
	// is then a second).
	InFlight int64
}

// Rate reports whether the window is the minute rate (a 429 of type
// "tokens"; a period budget is "insufficient_quota").
func (d *Denial) Rate() bool { return d.Window == "tpm" }

// Cost reports whether the window counts nano-USD.
func (d *Denial) Cost() bool { return d.Window == "cpd" || d.Window == "cpmo" }

func (d *Denial) Error() string {
	return fmt.Sprintf("budget %s %s exceeded: limit %d, used %d, requested %d", d.Scope, d.Window, d.Limit, d.Used, d.Requested)
}

// Settlement is a settled (or swept) reservation.
type Settlement struct {
	// Applied is false when the reservation was settled or swept before.
	Applied bool
	// Reserved and ReservedNano were charged at reservation; Tokens and
	// Nano are charged now (the actual usage, or the reservation when
	// swept). Overshoot is what the upstream used beyond the reservation.
	Reserved, ReservedNano int64
	Tokens, Nano           int64
	Overshoot              int64
	Record                 Record
}

// Record identifies a reservation in the ledger.
type Record struct {
	ID      string `json:"id"`
	Subject string `json:"sub"`
	KeyID   string `json:"key,omitempty"`
	Model   string `json:"model"`
	Day     string `json:"day"`
}

// ErrInvalidRequest wraps a request the store refuses before Redis (a
// programming error or a request beyond MaxRequestTokens).
var ErrInvalidRequest = errors.New("invalid budget request")

// pendingKey indexes reservations by deadline for the sweep (its own slot:
// written after the reservation, never in its script).
const pendingKey = "eg:budget:pending"

// Store reserves and settles in Redis.
type Store struct {
	rdb redis.UniversalClient
	ttl time.Duration
	now func() time.Time
}

// NewStore uses rdb; reservations not settled within timeout are swept.
func NewStore(rdb redis.UniversalClient, timeout time.Duration) *Store {
	if timeout <= 0 {
		timeout = DefaultReservationTimeout
	}
	return &Store{rdb: rdb, ttl: timeout, now: time.Now}
}

// tag is the hash tag of a subject's keys: the subject itself when it is
// plain, else a digest (a '}' would end the tag early).
func tag(subject string) string {
	for _, r := range subject {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':' || r == '@') || len(subject) > 128 {
			sum := sha256.Sum256([]byte(subject))
			return "h" + hex.EncodeToString(sum[:16])
		}
	}
	return subject
}

func prefix(subject string) string { return "eg:budget:{" + tag(subject) + "}:" }

// periods are the UTC day and month of t with the unix second each ends.
func periods(t time.Time) (day, month string, dayEnd, monthEnd int64) {
	t = t.UTC()
	y, m, d := t.Date()
	return t.Format("20060102"), t.Format("200601"),
		time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).Unix()
}

// Reserve charges the most r can consume against every scope, in one
// script: a *Reservation, or a *Denial (nil error) when a window does not
// allow it. Scopes without any limit are not sent.
func (s *Store) Reserve(ctx context.Context, r Request) (*Reservation, *Denial, error) {
	if r.ID == "" || r.Subject == "" || r.N < 1 || r.PromptTokens < 0 || r.Cap < 0 || r.DefaultCap < 0 {
		return nil, nil, fmt.Errorf("%w: id, subject and n ≥ 1 are required", ErrInvalidRequest)
	}
	if r.PromptTokens > MaxRequestTokens || r.Cap > MaxRequestTokens/r.N || r.N > MaxRequestTokens {
		return nil, nil, fmt.Errorf("%w: more than %d tokens", ErrInvalidRequest, MaxRequestTokens)
	}
	now := s.now()
	day, month, dayEnd, monthEnd := periods(now)
	rec := Record{ID: r.ID, Subject: r.Subject, KeyID: r.KeyID, Model: r.Model, Day: now.UTC().Format(time.DateOnly)}
	fields, _ := json.Marshal(rec)
	p := prefix(r.Subject)
	keys := []string{p + "r:" + r.ID}
	args := []any{r.PromptTokens, r.N, r.Cap, r.DefaultCap, r.Price.PromptNano, r.Price.CompletionNano,
		(s.ttl + time.Hour).Milliseconds(), dayEnd, monthEnd, 0, string(fields), r.Model}
	var kinds []string
	for _, sc := range r.Scopes {
		l := sc.Limits
		if l.Zero() && !sc.Stored {
			continue
		}
		keys = append(keys, p+sc.Part+":tpm", p+sc.Part+":d:"+day, p+sc.Part+":M:"+month, limitsKey(r.Subject, sc.Part))
		args = append(args, l.TokensPerMinute, l.TokensPerDay, l.TokensPerMonth, l.NanoUSDPerDay, l.NanoUSDPerMonth)
		kinds = append(kinds, sc.Kind)
	}
	res := &Reservation{Request: r, Day: rec.Day, keys: keys, scopes: len(kinds), Headers: Headers{Limit: -1}}
	if len(kinds) == 0 {
		// nothing limited: no Redis, the default cap as is
		res.Cap = r.Cap
		if res.Cap == 0 {
			res.Cap = r.DefaultCap
		}
		res.Tokens = r.PromptTokens + res.Cap*r.N
		res.Nano = mulSat(r.PromptTokens, r.Price.PromptNano) + mulSat(res.Cap*r.N, r.Price.CompletionNano)
		return res, nil, nil
	}
	args[9] = len(kinds)
	out, err := reserveScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("budget reserve: %w", err)
	}
	if len(out) == 2 && out[0] == int64(-1) {
		i, _ := out[1].(int64)
		if i < 1 || int(i) > len(kinds) {
			return nil, nil, fmt.Errorf("budget reserve: unexpected reply")
		}
		return nil, nil, &ModelNotAllowedError{Scope: kinds[i-1]}
	}
	v, err := ints(out, 1, 2, 3, 4, 5, 6)
	if err != nil || len(out) < 7 {
		return nil, nil, fmt.Errorf("budget reserve: unexpected reply")
	}
	if out[0] == int64(0) {
		if len(out) == 8 {
			d, _ := out[7].(int64)
			v[7] = d
		}
		window, _ := out[2].(string)
		scope := v[1]
		if scope < 1 || int(scope) > len(kinds) {
			return nil, nil, fmt.Errorf("budget reserve: unexpected reply")
		}
		d := &Denial{Scope: kinds[scope-1], Window: window, Limit: v[3], Used: v[4], Requested: v[5],
			RetryAfter: time.Duration(v[6]) * time.Millisecond, InFlight: v[7]}
		if v[6] < 0 {
			d.RetryAfter = -1
		}
		return nil, d, nil
	}
	res.Cap, res.Tokens, res.Nano = v[1], v[2], v[3]
	res.Headers = Headers{Limit: v[4], Remaining: v[5], Reset: time.Duration(v[6]) * time.Millisecond}
	return res, nil, nil
}

// Track indexes a reservation for the sweep (after Reserve; it may run
// beside the upstream call). A reservation that is never tracked and
// never settled stays charged in full; only its ledger row is missing.
func (s *Store) Track(ctx context.Context, r *Reservation) error {
	if r.scopes == 0 {
		return nil
	}
	return s.rdb.ZAdd(ctx, pendingKey, redis.Z{Score: float64(s.now().Add(s.ttl).UnixMilli()), Member: r.keys[0]}).Err()
}

// Settle charges the actual usage instead of the reservation (refunding
// the rest, or charging an overshoot) in one script; a second Settle of
// the same reservation, or one after the sweep, changes nothing
// (Applied false).
func (s *Store) Settle(ctx context.Context, r *Reservation, promptTokens, completionTokens int64) (Settlement, error) {
	if promptTokens < 0 || completionTokens < 0 || promptTokens > MaxTokens || completionTokens > MaxTokens {
		return Settlement{}, fmt.Errorf("%w: usage out of range", ErrInvalidRequest)
	}
	tokens := promptTokens + completionTokens
	nano := mulSat(promptTokens, r.Price.PromptNano) + mulSat(completionTokens, r.Price.CompletionNano)
	rec := Record{ID: r.ID, Subject: r.Subject, KeyID: r.KeyID, Model: r.Model, Day: r.Day}
	st := Settlement{Reserved: r.Tokens, ReservedNano: r.Nano, Tokens: tokens, Nano: nano, Record: rec}
	if tokens > r.Tokens {
		st.Overshoot = tokens - r.Tokens
	}
	if r.scopes == 0 {
		st.Applied = true
		return st, nil
	}
	out, err := settleScript.Run(ctx, s.rdb, r.keys, tokens, nano, r.scopes).Slice()
	if err != nil {
		return Settlement{}, fmt.Errorf("budget settle: %w", err)
	}
	st.Applied = len(out) > 0 && out[0] == int64(1)
	if st.Applied {
		_ = s.rdb.ZRem(ctx, pendingKey, r.keys[0]).Err() // the sweep removes what this misses
	}
	return st, nil
}

// Sweep charges in full every tracked reservation older than the
// timeout (at most limit of them): it deletes their records and returns
// them, each to exactly one sweeping replica.
func (s *Store) Sweep(ctx context.Context, limit int64) ([]Settlement, error) {
	due, err := s.rdb.ZRangeByScore(ctx, pendingKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(s.now().UnixMilli(), 10), Count: limit,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("budget sweep: %w", err)
	}
	var out []Settlement
	for _, key := range due {
		fields, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return out, fmt.Errorf("budget sweep: %w", err)
		}
		keys := []string{key}
		n, _ := strconv.Atoi(fields["n"])
		for i := 1; i <= n && i <= 16; i++ {
			kd, km := fields["kd"+strconv.Itoa(i)], fields["km"+strconv.Itoa(i)]
			if kd == "" || km == "" {
				break
			}
			keys = append(keys, kd, km)
		}
		res, err := sweepScript.Run(ctx, s.rdb, keys).Slice()
		if err != nil {
			return out, fmt.Errorf("budget sweep: %w", err)
		}
		if len(res) == 4 && res[0] == int64(1) {
			tok, _ := res[1].(int64)
			nano, _ := res[2].(int64)
			var rec Record
			if f, _ := res[3].(string); json.Unmarshal([]byte(f), &rec) == nil {
				out = append(out, Settlement{Applied: true, Reserved: tok, ReservedNano: nano, Tokens: tok, Nano: nano, Record: rec})
			}
		}
		if err := s.rdb.ZRem(ctx, pendingKey, key).Err(); err != nil {
			return out, fmt.Errorf("budget sweep: %w", err)
		}
	}
	return out, nil
}

// ModelNotAllowedError is Reserve's answer when a stored scope (a key's
// models, an override) does not allow the request's model.
type ModelNotAllowedError struct{ Scope string }

func (e *ModelNotAllowedError) Error() string {
	return "the " + e.Scope + "'s models exclude this model"
}

func limitsKey(subject, part string) string { return prefix(subject) + part + ":lim" }

// StoredLimits are a scope's limits kept in Redis: an administrator's
// override of a user's budgets, or an API key's own budgets and models
// (nil Models: every model the owner may use).
type StoredLimits struct {
	Limits Limits
	Models []string
}

// SetLimits stores (or with nil, removes) a scope's limits; the next
// reservation of every replica applies them.
func (s *Store) SetLimits(ctx context.Context, subject, part string, l *StoredLimits) error {
	return s.SetLimitsUntil(ctx, subject, part, l, time.Time{})
}

// limitsSlack keeps an entry that ends (SetLimitsUntil) an hour past its
// end: clocks of llm-api and Redis may differ, and a key is refused by the
// edge from its end on anyway.
const limitsSlack = time.Hour

// SetLimitsUntil is SetLimits for limits that end — an API key's, at its
// expiry or revocation: Redis drops the entry an hour after until (zero:
// never), so ended keys leave nothing behind.
func (s *Store) SetLimitsUntil(ctx context.Context, subject, part string, l *StoredLimits, until time.Time) error {
	key := limitsKey(subject, part)
	if l == nil {
		if err := s.rdb.Del(ctx, key).Err(); err != nil {
			return fmt.Errorf("budget limits: %w", err)
		}
		return nil
	}
	models := ""
	for i, m := range l.Models {
		if i > 0 {
			models += "\n"
		}
		models += m
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, "set", "1", "tpm", l.Limits.TokensPerMinute, "tpd", l.Limits.TokensPerDay,
			"tpmo", l.Limits.TokensPerMonth, "cpd", l.Limits.NanoUSDPerDay, "cpmo", l.Limits.NanoUSDPerMonth, "models", models)
		if !until.IsZero() {
			p.ExpireAt(ctx, key, until.Add(limitsSlack))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("budget limits: %w", err)
	}
	return nil
}

// ints reads the integer elements at idx of a script reply.
func ints(out []any, idx ...int) (map[int]int64, error) {
	v := map[int]int64{}
	for _, i := range idx {
		if i >= len(out) {
			return nil, errors.New("short reply")
		}
		switch x := out[i].(type) {
		case int64:
			v[i] = x
		case string:
			// the window name sits at index 2 of a denial
			if i != 2 {
				return nil, errors.New("not an integer")
			}
		default:
			return nil, errors.New("not an integer")
		}
	}
	return v, nil
}

// Limits reads a scope's stored limits (nil when none are stored).
func (s *Store) Limits(ctx context.Context, subject, part string) (*StoredLimits, error) {
	v, err := s.rdb.HGetAll(ctx, limitsKey(subject, part)).Result()
	if err != nil {
		return nil, fmt.Errorf("budget limits: %w", err)
	}
	if v["set"] == "" {
		return nil, nil
	}
	n := func(k string) int64 { x, _ := strconv.ParseInt(v[k], 10, 64); return x }
	l := &StoredLimits{Limits: Limits{TokensPerMinute: n("tpm"), TokensPerDay: n("tpd"), TokensPerMonth: n("tpmo"),
		NanoUSDPerDay: n("cpd"), NanoUSDPerMonth: n("cpmo")}}
	if m := v["models"]; m != "" {
		l.Models = strings.Split(m, "\n")
	}
	return l, nil
}
