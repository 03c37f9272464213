package documents

import (
	"crypto"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// Merged is the key set MergeJWKS built and how it differs from the one published before.
type Merged struct {
	Set jose.JSONWebKeySet
	// Added are the kids of wanted keys that were not published; Retained the kids of published keys that are not
	// wanted but kept (a predecessor cluster's keys, a key the apiservers no longer serve); Retired the kids of
	// published keys removed because they were asked to be. Each is sorted.
	Added, Retained, Retired []string
	// Stripped are the kids of published entries that carried private key material: only their public half is
	// published again.
	Stripped []string
}

// Changed says whether the merged set differs in keys from the published one.
func (m Merged) Changed() bool {
	return len(m.Added)+len(m.Retired)+len(m.Stripped) > 0
}

// PublicKeys are the merged set's keys, in the set's order, without the legacy copies.
func (m Merged) PublicKeys() []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, k := range m.Set.Keys {
		if k.KeyID != "" {
			out = append(out, k.Key)
		}
	}
	return out
}

// MergeJWKS builds the key set to publish when a JWKS (published, nil or empty for none) is already served: the
// wanted keys (what the cluster serves, the key directory's keys, given files: KeySet's entries) plus every key
// already published under another kid, unless its kid is in retire. A published issuer thus never loses a key
// implicitly: a key leaves only by retire (`irsa sync --retire KID`, `irsa rotate-key retire`), so tokens signed by a
// predecessor cluster's key, or by a key a rotation is retiring, keep verifying in STS until then.
//
// The rules, pinned by testdata/merge:
//   - a wanted key is published as KeySet publishes it (kid = KeyID, alg, use "sig"), even if a published entry
//     has its kid; a retired kid that is also wanted stays (the caller refuses that, with the reason);
//   - a published key that is not wanted is kept with its kid, alg and use as published, its public half only (an
//     entry with private material is stripped and reported in Stripped; never is a private field republished);
//   - published entries that are not signing keys irsa can check (use other than "sig", symmetric keys, keys that
//     break keys.KeyRule) and entries without a kid are dropped: STS could not match a token to them, and the legacy
//     empty-kid copies are made again from opts;
//   - the result is sorted by kid, so the output is the same whatever the order of the inputs.
//
// A published document that is not a JWKS is an error: irsa does not overwrite what it cannot read.
func MergeJWKS(published []byte, wanted []crypto.PublicKey, retire []string, opts JWKSOptions) (Merged, error) {
	var m Merged
	var old jose.JSONWebKeySet
	if len(published) > 0 {
		if err := json.Unmarshal(published, &old); err != nil {
			return m, fmt.Errorf("published JWKS: %w (irsa does not replace a key set it cannot read: fix or delete it)", err)
		}
	}
	want, err := KeySet(wanted, JWKSOptions{})
	if err != nil {
		return m, err
	}
	byKID := map[string]jose.JSONWebKey{}
	for _, k := range want.Keys {
		byKID[k.KeyID] = k
	}
	was := map[string]bool{}
	for _, k := range old.Keys {
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, err := keys.AlgorithmOf(publicOf(k.Key)); err != nil {
			continue
		}
		was[k.KeyID] = true
		if _, ok := byKID[k.KeyID]; ok {
			continue
		}
		if slices.Contains(retire, k.KeyID) {
			m.Retired = append(m.Retired, k.KeyID)
			continue
		}
		if !k.IsPublic() {
			m.Stripped = append(m.Stripped, k.KeyID)
			k = k.Public()
		}
		// Only the members a verifier needs: x5c and friends of a predecessor's entry are not irsa's to vouch for.
		byKID[k.KeyID] = jose.JSONWebKey{Key: publicOf(k.Key), KeyID: k.KeyID, Algorithm: k.Algorithm, Use: k.Use}
		m.Retained = append(m.Retained, k.KeyID)
	}
	for _, k := range want.Keys {
		if !was[k.KeyID] {
			m.Added = append(m.Added, k.KeyID)
		}
	}
	kids := make([]string, 0, len(byKID))
	for kid := range byKID {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	for _, kid := range kids {
		m.Set.Keys = append(m.Set.Keys, byKID[kid])
	}
	if opts.LegacyEmptyKID {
		for _, kid := range kids {
			k := byKID[kid]
			k.KeyID = ""
			m.Set.Keys = append(m.Set.Keys, k)
		}
	}
	for _, l := range []*[]string{&m.Added, &m.Retained, &m.Retired, &m.Stripped} {
		sort.Strings(*l)
	}
	return m, nil
}

// MarshalKeySet renders a key set as JWKS renders one.
func MarshalKeySet(set jose.JSONWebKeySet) ([]byte, error) { return marshal(set) }

// PublishedKIDs returns the kids of a published JWKS's entries, in order; entries without a kid are left out.
func PublishedKIDs(published []byte) ([]string, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(published, &set); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	var out []string
	for _, k := range set.Keys {
		if k.KeyID != "" {
			out = append(out, k.KeyID)
		}
	}
	return out, nil
}

// publicOf is the public half of a key go-jose parsed (a private key when the entry carried "d").
func publicOf(k any) crypto.PublicKey {
	if s, ok := k.(crypto.Signer); ok {
		return s.Public()
	}
	return k
}
