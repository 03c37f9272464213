package stsgate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-anywhere/irsa/pipeline/trust"
)

type roleInfo struct {
	arn                string
	trustPolicy        string
	maxSessionDuration int
}

type cached struct {
	value any
	at    time.Time
}

// iamReader reads OIDC providers and roles from the backend's IAM, reusing successful reads for ttl.
type iamReader struct {
	client *iam.Client
	ttl    time.Duration
	now    func() time.Time
	mu     sync.Mutex
	cache  map[string]cached
}

func (r *iamReader) lookup(key string) (any, bool) {
	if r.ttl <= 0 {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache[key]
	if !ok || r.now().Sub(c.at) >= r.ttl {
		return nil, false
	}
	return c.value, true
}

func (r *iamReader) store(key string, v any) {
	if r.ttl <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		r.cache = map[string]cached{}
	}
	r.cache[key] = cached{value: v, at: r.now()}
}

// provider finds the IAM OIDC provider of account whose URL is issuer exactly; nil when there is none. It tries the
// ARN IAM derives from the URL first, then lists the providers, for emulators that name them differently.
func (r *iamReader) provider(ctx context.Context, account, issuer string) (*trust.Provider, error) {
	key := "provider|" + account + "|" + issuer
	if v, ok := r.lookup(key); ok {
		return v.(*trust.Provider), nil
	}
	derived := "arn:aws:iam::" + account + ":oidc-provider/" + trust.ConditionKeyPrefix(issuer)
	p, err := r.getProvider(ctx, derived)
	if err != nil {
		return nil, err
	}
	if p == nil || p.IssuerURL() != issuer {
		p = nil
		list, err := r.client.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
		if err != nil {
			return nil, fmt.Errorf("list IAM OIDC providers at the backend: %w", err)
		}
		for _, e := range list.OpenIDConnectProviderList {
			arn := aws.ToString(e.Arn)
			if arn == derived {
				continue
			}
			candidate, err := r.getProvider(ctx, arn)
			if err != nil {
				return nil, err
			}
			if candidate != nil && candidate.IssuerURL() == issuer {
				p = candidate
				break
			}
		}
	}
	if p != nil {
		r.store(key, p)
	}
	return p, nil
}

func (r *iamReader) getProvider(ctx context.Context, arn string) (*trust.Provider, error) {
	out, err := r.client.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(arn)})
	var notFound *types.NoSuchEntityException
	switch {
	case errors.As(err, &notFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get IAM OIDC provider %q at the backend: %w", arn, err)
	}
	return &trust.Provider{
		URL: aws.ToString(out.Url), ARN: arn, ClientIDs: out.ClientIDList, Thumbprints: out.ThumbprintList,
	}, nil
}

// role reads a role by name; nil when it does not exist.
func (r *iamReader) role(ctx context.Context, name string) (*roleInfo, error) {
	key := "role|" + name
	if v, ok := r.lookup(key); ok {
		return v.(*roleInfo), nil
	}
	out, err := r.client.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	var notFound *types.NoSuchEntityException
	switch {
	case errors.As(err, &notFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get IAM role %q at the backend: %w", name, err)
	}
	ri := &roleInfo{arn: aws.ToString(out.Role.Arn), trustPolicy: aws.ToString(out.Role.AssumeRolePolicyDocument),
		maxSessionDuration: int(aws.ToInt32(out.Role.MaxSessionDuration))}
	if ri.maxSessionDuration == 0 {
		ri.maxSessionDuration = 3600
	}
	r.store(key, ri)
	return ri, nil
}
