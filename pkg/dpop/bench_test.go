package dpop

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"testing"
)

// The proof check costs one P-256 signature verification plus parsing,
// the thumbprint, the htu comparison and the in-process replay store:
// BENCHMARKS.md reports BenchmarkProofCheckES256 as a ratio to
// BenchmarkP256Verify, measured in the same run (scripts/bench.sh dpop).

// BenchmarkP256Verify is the baseline: ecdsa.Verify alone, digest and
// (r, s) ready.
func BenchmarkP256Verify(b *testing.B) {
	priv := signer("ec").(*ecdsa.PrivateKey)
	d := sha256.Sum256([]byte("signing input"))
	r, s, err := ecdsa.Sign(nil, priv, d[:])
	if err != nil {
		b.Fatal(err)
	}
	pub := &priv.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.Verify(pub, d[:], r, s) {
			b.Fatal("verify")
		}
	}
}

// BenchmarkProofCheckES256 is Verifier.Verify on a valid ES256 proof: the
// whole check the edge runs per DPoP request (without Redis).
func BenchmarkProofCheckES256(b *testing.B) {
	c := &clock{t: t0}
	k := mustKey(b, "ec")
	req := request(k)
	const batch = 4096
	proofs := make([]string, batch)
	for i := range proofs {
		proofs[i], _ = k.Proof(testMethod, testURL, ProofOptions{AccessToken: testToken, Now: t0})
	}
	v := newVerifier(b, c, func(cfg *Config) { cfg.Replay.Local = NewLocalStore(2*batch, c.now) })
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == batch { // every proof used: a fresh store, off the clock
			b.StopTimer()
			v = newVerifier(b, c, func(cfg *Config) { cfg.Replay.Local = NewLocalStore(2*batch, c.now) })
			i = 0
			b.StartTimer()
		}
		if err := v.Verify(ctx, proofs[i], req); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkProofParse is the parse alone (header, jwk, claims): what a
// refused proof costs at most before the signature.
func BenchmarkProofParse(b *testing.B) {
	k := mustKey(b, "ec")
	p, _ := k.Proof(testMethod, testURL, ProofOptions{AccessToken: testToken, Now: t0})
	sc := new(scratch)
	b.ReportAllocs()
	for b.Loop() {
		var pp parsed
		if err := parse(p, algSet(0xff), &pp, sc); err != nil {
			b.Fatal(err)
		}
	}
}
