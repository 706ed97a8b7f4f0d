package deploy

import (
	"testing"
)

// configFiles are the *_FILE variables that name configuration, not a
// secret: mounted from the repository (a compose config, a ConfigMap), and
// checked by their own tests (TestDeploymentsMeterTheModelAPI).
var configFiles = map[string]bool{"LLM_BUDGETS_FILE": true}

// budgetsFile is the budgets file the deployments start from.
const budgetsFile = "config/budgets/production.example.yaml"

// TestDeploymentsMeterTheModelAPI: compose and Kubernetes give llm-api
// LLM_BUDGETS_FILE (required in strict mode with a model server) with the
// repository's budgets file mounted where it points — Kubernetes as a
// ConfigMap holding the same bytes — and fail closed while Redis is away.
// (services/llm-api's budget tests parse every budgets file of the
// repository.)
func TestDeploymentsMeterTheModelAPI(t *testing.T) {
	want := string(repoFile(t, budgetsFile))

	svc := composeServices(t)["llm-api"]
	env := m(svc["environment"])
	if s(env["LLM_BUDGETS_FILE"]) != "/etc/llm-api/budgets.yaml" || s(env["LLM_BUDGET_ON_REDIS_ERROR"]) != "deny" {
		t.Errorf("compose llm-api: LLM_BUDGETS_FILE %q, LLM_BUDGET_ON_REDIS_ERROR %q", env["LLM_BUDGETS_FILE"], env["LLM_BUDGET_ON_REDIS_ERROR"])
	}
	mounted := false
	for _, c := range l(svc["configs"]) {
		if s(m(c)["source"]) == "llm_budgets" && s(m(c)["target"]) == "/etc/llm-api/budgets.yaml" {
			mounted = true
		}
	}
	if !mounted || s(path(compose(t), "configs", "llm_budgets", "file")) != "../"+budgetsFile {
		t.Errorf("compose llm-api does not mount %s at /etc/llm-api/budgets.yaml", budgetsFile)
	}

	objs := k8sBase(t)
	d := k8sOne(t, objs, "Deployment", "platform", "llm-api")
	cm := k8sOne(t, objs, "ConfigMap", "platform", "llm-api-budgets")
	if got := s(path(cm.doc, "data", "budgets.yaml")); got != want {
		t.Errorf("ConfigMap llm-api-budgets is not a copy of %s", budgetsFile)
	}
	vol := ""
	for _, v := range l(podSpec(d)["volumes"]) {
		if s(path(v, "configMap", "name")) == "llm-api-budgets" {
			vol = s(m(v)["name"])
		}
	}
	for _, c := range containers(d) {
		values, _ := envOf(c)
		if values["LLM_BUDGETS_FILE"] != "/etc/llm-api/budgets.yaml" || values["LLM_BUDGET_ON_REDIS_ERROR"] != "deny" {
			t.Errorf("k8s llm-api: LLM_BUDGETS_FILE %q, LLM_BUDGET_ON_REDIS_ERROR %q", values["LLM_BUDGETS_FILE"], values["LLM_BUDGET_ON_REDIS_ERROR"])
		}
		ok := false
		for _, vm := range l(c["volumeMounts"]) {
			if vol != "" && s(m(vm)["name"]) == vol && s(m(vm)["mountPath"]) == "/etc/llm-api" {
				ok = true
			}
		}
		if !ok {
			t.Error("k8s llm-api does not mount the ConfigMap llm-api-budgets at /etc/llm-api")
		}
	}
}
