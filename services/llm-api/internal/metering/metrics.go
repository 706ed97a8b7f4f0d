package metering

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the budget counters (registered on the service's registry).
type Metrics struct {
	Tokens       *prometheus.CounterVec
	Reservations *prometheus.CounterVec
	Denials      *prometheus.CounterVec
	Settlements  *prometheus.CounterVec
	Overshoot    *prometheus.CounterVec
}

// NewMetrics builds the counters (register them with Register).
func NewMetrics() *Metrics {
	return &Metrics{
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeguard_llm_tokens_total",
			Help: "Tokens charged, by model and kind (prompt, completion)."}, []string{"model", "kind"}),
		Reservations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeguard_llm_budget_reservations_total",
			Help: "Budget reservations by outcome (granted, denied, unavailable, unmetered)."}, []string{"outcome"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeguard_llm_budget_denials_total",
			Help: "Requests refused by a budget, by scope (user, key, model) and window (tpm, tpd, tpmo, cpd, cpmo, model)."},
			[]string{"scope", "window"}),
		Settlements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeguard_llm_budget_settlements_total",
			Help: "Settled reservations by status (settled, aborted, no_usage, failed, refused, swept, unmetered)."},
			[]string{"status"}),
		Overshoot: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgeguard_llm_budget_overshoot_tokens_total",
			Help: "Tokens the model server reported beyond the reservation (charged), by model."}, []string{"model"}),
	}
}

// Register adds the counters to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Tokens, m.Reservations, m.Denials, m.Settlements, m.Overshoot} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *Metrics) tokens(model string, prompt, completion int64) {
	if prompt > 0 {
		m.Tokens.WithLabelValues(model, "prompt").Add(float64(prompt))
	}
	if completion > 0 {
		m.Tokens.WithLabelValues(model, "completion").Add(float64(completion))
	}
}

func (m *Metrics) reservation(outcome string) { m.Reservations.WithLabelValues(outcome).Inc() }

func (m *Metrics) denied(scope, window string) {
	m.Reservations.WithLabelValues("denied").Inc()
	m.Denials.WithLabelValues(scope, window).Inc()
}

func (m *Metrics) settled(status string) { m.Settlements.WithLabelValues(status).Inc() }

func (m *Metrics) overshoot(model string, n int64) {
	m.Overshoot.WithLabelValues(model).Add(float64(n))
}
