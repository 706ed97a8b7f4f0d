package testenv

import "testing"

func TestRequireSkipsLocallyWhenUnset(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("EDGEGUARD_TEST_NOTHING", "")
	ran := false
	t.Run("inner", func(t *testing.T) {
		Require(t, "EDGEGUARD_TEST_NOTHING")
		ran = true
	})
	if ran {
		t.Fatal("Require must skip when the variable is unset")
	}
}

func TestRequireReturnsTheValue(t *testing.T) {
	t.Setenv("EDGEGUARD_TEST_SOMETHING", "x")
	if Require(t, "EDGEGUARD_TEST_SOMETHING") != "x" {
		t.Fatal("value")
	}
}
