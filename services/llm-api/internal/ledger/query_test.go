package ledger

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var now = time.Date(2026, 12, 7, 23, 59, 59, 0, time.FixedZone("UTC+3", 3*3600)) // 20:59:59 UTC

func TestParseQuery(t *testing.T) {
	for name, c := range map[string]struct {
		raw      string
		admin    bool
		from, to string
		subject  string
		code     string
	}{
		"defaults: this UTC month to today":  {raw: "", from: "2026-12-01", to: "2026-12-07"},
		"one day":                            {raw: "from=2026-11-05&to=2026-11-05", from: "2026-11-05", to: "2026-11-05"},
		"from only":                          {raw: "from=2026-01-01", from: "2026-01-01", to: "2026-12-07"},
		"366 days":                           {raw: "from=2024-01-01&to=2024-12-31", from: "2024-01-01", to: "2024-12-31"},
		"367 days":                           {raw: "from=2024-01-01&to=2025-01-01", code: CodeInvalidDateRange},
		"to before from":                     {raw: "from=2026-12-02&to=2026-12-01", code: CodeInvalidDateRange},
		"not a date":                         {raw: "from=yesterday", code: CodeInvalidDateRange},
		"no zero padding":                    {raw: "from=2026-1-1", code: CodeInvalidDateRange},
		"a time":                             {raw: "to=2026-12-01T00:00:00Z", code: CodeInvalidDateRange},
		"February 30":                        {raw: "from=2026-02-30", code: CodeInvalidDateRange},
		"year 0":                             {raw: "from=0000-01-01&to=0000-01-02", code: CodeInvalidDateRange},
		"huge range":                         {raw: "from=2000-01-01&to=9999-12-31", code: CodeInvalidDateRange},
		"empty value":                        {raw: "from=", code: CodeInvalidDateRange},
		"unicode digits":                     {raw: "from=٢٠٢٦-١٢-٠١", code: CodeInvalidDateRange},
		"unknown":                            {raw: "limit=5", code: "unknown_parameter"},
		"subject for users":                  {raw: "subject=bob", code: "unknown_parameter"},
		"repeated":                           {raw: "from=2026-12-01&from=2026-12-02", code: "duplicate_parameter"},
		"malformed":                          {raw: "from=%zz", code: "invalid_query"},
		"overlong":                           {raw: "from=" + strings.Repeat("9", 3000), code: "query_too_long"},
		"admin: one subject":                 {raw: "subject=2f1c-uuid&from=2026-12-01", admin: true, from: "2026-12-01", to: "2026-12-07", subject: "2f1c-uuid"},
		"admin: all":                         {raw: "", admin: true, from: "2026-12-01", to: "2026-12-07"},
		"admin: path traversal":              {raw: "subject=../../etc", admin: true, code: "invalid_subject"},
		"admin: slash":                       {raw: "subject=a%2Fb", admin: true, code: "invalid_subject"},
		"admin: brace":                       {raw: "subject=a%7D", admin: true, code: "invalid_subject"},
		"admin: empty subject":               {raw: "subject=", admin: true, code: "invalid_subject"},
		"admin: unicode subject":             {raw: "subject=%C3%A9", admin: true, code: "invalid_subject"},
		"admin: overlong subject":            {raw: "subject=" + strings.Repeat("a", 129), admin: true, code: "invalid_subject"},
		"admin: sql":                         {raw: "subject=x'%20OR%201=1--", admin: true, code: "invalid_subject"},
		"admin: federated subject":           {raw: "subject=f:ldap:jan.doe@example", admin: true, from: "2026-12-01", to: "2026-12-07", subject: "f:ldap:jan.doe@example"},
		"admin: a date range refusal stands": {raw: "subject=a&to=x", admin: true, code: CodeInvalidDateRange},
	} {
		t.Run(name, func(t *testing.T) {
			q, qe := ParseQuery(c.raw, now, c.admin)
			if c.code != "" {
				if qe == nil || qe.Code != c.code {
					t.Fatalf("%+v %v, want %s", q, qe, c.code)
				}
				return
			}
			if qe != nil {
				t.Fatal(qe)
			}
			from, to := q.Days()
			if from != c.from || to != c.to || q.Subject != c.subject || q.Limit != MaxRows+1 {
				t.Fatalf("%s..%s %q %d", from, to, q.Subject, q.Limit)
			}
			if !q.To.Equal(q.From.AddDate(0, 0, int(q.To.Sub(q.From).Hours()/24))) || q.From.Location() != time.UTC {
				t.Fatalf("%v %v", q.From, q.To)
			}
		})
	}
}

// FuzzParseQuery: any query string is a bounded range or a refusal with a
// code whose message never echoes the input.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "from=2026-12-01&to=2026-12-07", "from=2024-01-01&to=2025-01-01", "to=2026-12-01",
		"subject=../../x", "subject=%00", "from=%zz", "from=2026-02-30", strings.Repeat("a=1&", 600), "from=9999-12-31",
		"subject=" + strings.Repeat("ü", 100), "from=2026-12-01&from=2026-12-01", "FROM=2026-12-01", "from=+2026-12-01"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, admin bool) {
		q, qe := ParseQuery(raw, now, admin)
		if qe != nil {
			if qe.Code == "" || !utf8.ValidString(qe.Message) || (len(raw) > 8 && strings.Contains(qe.Message, raw)) {
				t.Fatalf("%+v", qe)
			}
			return
		}
		days := q.To.Sub(q.From) / (24 * time.Hour)
		if days < 1 || days > MaxRangeDays || (!admin && q.Subject != "") {
			t.Fatalf("%q → %+v", raw, q)
		}
	})
}
