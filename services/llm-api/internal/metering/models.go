package metering

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmproxy"
	"github.com/rs/zerolog"
)

// models answers GET /v1/models with the models the caller may use: its
// roles' (grant) or, when an administrator's override lists models, the
// override's, and, for an API key with its own list, among the key's.
func (h *Handler) models(w http.ResponseWriter, r *http.Request, id *identity.Identity, grant budget.Grant) {
	var userModels, keyModels []string
	parts := map[string]*[]string{"u": &userModels}
	if id.APIKeyID != "" {
		parts["k:"+id.APIKeyID] = &keyModels
	}
	for part, dst := range parts {
		l, err := h.cfg.Store.Limits(r.Context(), id.Subject, part)
		if err != nil && h.cfg.OnRedisError != OnRedisErrorAllow {
			zerolog.Ctx(r.Context()).Error().Err(err).Str("reason", CodeBudgetUnavailable).Msg("budget store unavailable")
			openAIError(w, http.StatusServiceUnavailable, "server_error", CodeBudgetUnavailable, "",
				"usage budgets cannot be checked right now; retry shortly")
			return
		}
		if l != nil {
			*dst = l.Models
		}
	}
	user := grant.Allows
	if userModels != nil {
		user = func(m string) bool { return slices.Contains(userModels, m) }
	}
	allowed := func(m string) bool { return user(m) && (keyModels == nil || slices.Contains(keyModels, m)) }
	f := &modelFilter{allowed: allowed}
	h.cfg.Upstream.ServeHTTP(w, r.WithContext(llmproxy.WithObserver(r.Context(), f)))
}

// modelFilter rewrites a model list answer to the allowed models.
type modelFilter struct {
	allowed func(string) bool
}

func (f *modelFilter) Refused(int)        {}
func (f *modelFilter) Failed(int, string) {}

func (f *modelFilter) Answered(res *http.Response) {
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	_ = res.Body.Close()
	var list struct {
		Object string            `json:"object"`
		Data   []json.RawMessage `json:"data"`
	}
	out := []byte(`{"object":"list","data":[]}`)
	if err == nil && json.Unmarshal(b, &list) == nil {
		kept := make([]json.RawMessage, 0, len(list.Data))
		for _, m := range list.Data {
			var meta struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m, &meta) == nil && f.allowed(meta.ID) {
				kept = append(kept, m)
			}
		}
		if list.Object == "" {
			list.Object = "list"
		}
		if enc, err := json.Marshal(struct {
			Object string            `json:"object"`
			Data   []json.RawMessage `json:"data"`
		}{list.Object, kept}); err == nil {
			out = enc
		}
	}
	res.Body = io.NopCloser(bytes.NewReader(out))
	res.ContentLength = int64(len(out))
	res.Header.Set("Content-Length", strconv.Itoa(len(out)))
}
