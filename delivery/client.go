package delivery

import (
	"context"
	"errors"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage/remote"
)

// This file holds every call into Prometheus' remote package: its HTTP
// client handles TLS, auth, headers, sigv4, Azure AD and Google IAM exactly
// as Prometheus does, and classifies responses (5xx, 429 when configured,
// network errors are recoverable).

type writeClient interface {
	store(ctx context.Context, req []byte, attempt int) error
}

type promClient struct{ c remote.WriteClient }

func newClient(name string, rw *config.RemoteWriteConfig) (writeClient, error) {
	c, err := remote.NewWriteClient(name, &remote.ClientConfig{
		URL:              rw.URL,
		WriteProtoMsg:    rw.ProtobufMessage,
		Timeout:          rw.RemoteTimeout,
		HTTPClientConfig: rw.HTTPClientConfig,
		SigV4Config:      rw.SigV4Config,
		AzureADConfig:    rw.AzureADConfig,
		GoogleIAMConfig:  rw.GoogleIAMConfig,
		Headers:          rw.Headers,
		RetryOnRateLimit: rw.QueueConfig.RetryOnRateLimit,
		RoundRobinDNS:    rw.RoundRobinDNS,
	})
	if err != nil {
		return nil, err
	}
	return promClient{c}, nil
}

func (p promClient) store(ctx context.Context, req []byte, attempt int) error {
	_, err := p.c.Store(ctx, req, attempt)
	return err
}

// recoverable reports whether a failed request may succeed if retried.
func recoverable(err error) bool {
	var r remote.RecoverableError
	return errors.As(err, &r)
}
