package audit

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

func TestReadStreamEnv(t *testing.T) {
	for _, tc := range []struct {
		env    map[string]string
		stream string
		maxLen int64
		faults []string
	}{
		{nil, DefaultStream, DefaultMaxLen, nil},
		{map[string]string{"AUDIT_REDIS_STREAM": "eg:audit.v2", "AUDIT_STREAM_MAXLEN": "5000"}, "eg:audit.v2", 5000, nil},
		{map[string]string{"AUDIT_STREAM_MAXLEN": "10"}, "", 0, []string{"AUDIT_STREAM_MAXLEN"}},
		{map[string]string{"AUDIT_REDIS_STREAM": "a b", "AUDIT_STREAM_MAXLEN": "lots"}, "", 0,
			[]string{"AUDIT_REDIS_STREAM", "AUDIT_STREAM_MAXLEN"}},
	} {
		l := &envconf.Loader{Getenv: func(k string) string { return tc.env[k] }}
		s, err := ReadStreamEnv(l)
		if tc.faults == nil {
			if err != nil || s.Stream != tc.stream || s.MaxLen != tc.maxLen {
				t.Errorf("%v: %+v %v", tc.env, s, err)
			}
			continue
		}
		var got []string
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				name, _, _ := strings.Cut(line, ":")
				got = append(got, name)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.faults, ",") {
			t.Errorf("%v: faults %q, want %q (%v)", tc.env, got, tc.faults, err)
		}
	}
}
