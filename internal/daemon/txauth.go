package daemon

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// checkerAuth admits a TransactionChecks stream: it must carry the admin token
// ("authorization: Bearer TOKEN", as the Admin service). A checker receives every
// check-back of its group, bodies included, and its COMMIT or ROLLBACK decides
// transactions it did not begin: that is the power of the group's owner, not of any
// process that can reach the ingress port. The token is the configured admin.token, or
// the one the daemon generates into a file only its user can read, so a checker run by
// the same user finds it without configuration (docs/security.md).
func (d *Daemon) checkerAuth(ctx context.Context) error {
	if d.grpcTokenOK(ctx, "/producerd.v1.Ingress/TransactionChecks") {
		return nil
	}
	if d.adminToken() == "" {
		return status.Error(codes.Unauthenticated, "daemon: TransactionChecks needs the admin token, and this daemon has none: configure admin.listen (a token is generated) or admin.token")
	}
	return status.Error(codes.Unauthenticated, "daemon: TransactionChecks needs the admin token (authorization: Bearer TOKEN, as the Admin service)")
}
