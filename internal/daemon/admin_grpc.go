package daemon

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
	"github.com/producerd/producerd/core"
	"github.com/producerd/producerd/internal/config"
)

// admin implements producerdpb.AdminServer.
type admin struct {
	producerdpb.UnimplementedAdminServer
	d *Daemon
}

func (a *admin) Status(context.Context, *producerdpb.StatusRequest) (*producerdpb.StatusResponse, error) {
	return a.d.Status(), nil
}

func (a *admin) ListStrategies(context.Context, *producerdpb.ListStrategiesRequest) (*producerdpb.ListStrategiesResponse, error) {
	return &producerdpb.ListStrategiesResponse{Strategies: a.d.Strategies()}, nil
}

func adminError(err error) error {
	switch {
	case errors.Is(err, ErrUnknownStrategy), errors.Is(err, ErrUnknownGroup), errors.Is(err, config.ErrInvalid), errors.Is(err, core.ErrInvalidMessage):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errDraining):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func (a *admin) SwapStrategy(ctx context.Context, req *producerdpb.SwapStrategyRequest) (*producerdpb.SwapStrategyResponse, error) {
	res, err := a.d.Swap(ctx, req.GetName(), req.GetProducerGroup())
	if err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.SwapStrategyResponse{Swapped: res}, nil
}

func (a *admin) Reload(ctx context.Context, _ *producerdpb.ReloadRequest) (*producerdpb.ReloadResponse, error) {
	changes, restart, err := a.d.Reload(ctx)
	if err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.ReloadResponse{Changes: changes, RestartNeeded: restart, ConfigGeneration: a.d.cfgGen.Load()}, nil
}

func (a *admin) Drain(ctx context.Context, _ *producerdpb.DrainRequest) (*producerdpb.DrainResponse, error) {
	return &producerdpb.DrainResponse{Remaining: a.d.Drain(ctx)}, nil
}

func (a *admin) Resume(context.Context, *producerdpb.ResumeRequest) (*producerdpb.ResumeResponse, error) {
	if err := a.d.Resume(); err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.ResumeResponse{}, nil
}

func (a *admin) CreateTopic(ctx context.Context, req *producerdpb.CreateTopicRequest) (*producerdpb.CreateTopicResponse, error) {
	done, err := a.d.CreateTopic(ctx, req)
	if err != nil {
		return nil, adminError(err)
	}
	return &producerdpb.CreateTopicResponse{Brokers: done}, nil
}
