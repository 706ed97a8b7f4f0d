package tools

import (
	"context"
	"encoding/json"
	"time"
	_ "time/tzdata" // IANA zones without the host's zoneinfo (distroless images)

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TimeNowArgs are time_now's arguments.
type TimeNowArgs struct {
	// Timezone is an IANA zone name (default UTC).
	Timezone string `json:"timezone"`
}

// TimeNowResult is time_now's structured result.
type TimeNowResult struct {
	Time     string `json:"time"`
	UTC      string `json:"utc"`
	Unix     int64  `json:"unix"`
	Timezone string `json:"timezone"`
}

// maxZoneName bounds a zone name (the longest IANA name is ~30 bytes).
const maxZoneName = 64

// DecodeTimeNowArgs decodes and checks time_now's arguments.
func DecodeTimeNowArgs(raw json.RawMessage) (TimeNowArgs, error) {
	var a TimeNowArgs
	if err := decodeArgs(raw, &a, "timezone"); err != nil {
		return a, err
	}
	if len(a.Timezone) > maxZoneName {
		return a, errInvalidZone
	}
	return a, nil
}

type argError string

func (e argError) Error() string { return string(e) }

const errInvalidZone = argError("timezone must be an IANA zone name such as Europe/Berlin")

func (s *Server) timeNow() *Tool {
	return &Tool{
		Def: &mcp.Tool{
			Name:        NameTimeNow,
			Title:       "Current time",
			Description: "Returns the current time (RFC 3339) in UTC or in an IANA time zone.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"timezone":{"type":"string","maxLength":64,` +
				`"description":"IANA time zone name, e.g. Europe/Berlin (default UTC)"}},"additionalProperties":false}`),
			Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
		},
		Policy: identity.Policy{}, // any authenticated caller, guests included
		handler: func(_ context.Context, _ *identity.Identity, raw json.RawMessage) *mcp.CallToolResult {
			a, err := DecodeTimeNowArgs(raw)
			if err != nil {
				return toolError("invalid_arguments", err.Error())
			}
			loc := time.UTC
			if a.Timezone != "" {
				if loc, err = time.LoadLocation(a.Timezone); err != nil {
					return toolError("invalid_arguments", errInvalidZone.Error())
				}
			}
			now := s.cfg.Now()
			return textResult(TimeNowResult{
				Time: now.In(loc).Format(time.RFC3339), UTC: now.UTC().Format(time.RFC3339Nano),
				Unix: now.Unix(), Timezone: loc.String(),
			}, false)
		},
	}
}
