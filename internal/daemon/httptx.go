package daemon

import (
	"net/http"

	"github.com/producerd/producerd/api/producerdpb"
)

// HTTP transactions (the check-back stream is gRPC only):
//
//	POST /v1/transactions                      body: one HTTPMessage -> HTTPTransaction
//	POST /v1/transactions/{id}/commit          ?producer_group= when the daemon has several
//	POST /v1/transactions/{id}/rollback
//
// Errors are HTTPResponse.Error; an unknown transaction is 404 UNKNOWN_TRANSACTION.

// HTTPTransaction is the answer of POST /v1/transactions.
type HTTPTransaction struct {
	TransactionID string      `json:"transaction_id"`
	Result        *HTTPResult `json:"result,omitempty"`
	Error         *HTTPError  `json:"error,omitempty"`
}

func (d *Daemon) txHTTPRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/transactions", d.postTransaction)
	mux.HandleFunc("POST /v1/transactions/{id}/commit", func(w http.ResponseWriter, r *http.Request) {
		d.endTransactionHTTP(w, r, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_COMMIT)
	})
	mux.HandleFunc("POST /v1/transactions/{id}/rollback", func(w http.ResponseWriter, r *http.Request) {
		d.endTransactionHTTP(w, r, producerdpb.TransactionResolution_TRANSACTION_RESOLUTION_ROLLBACK)
	})
}

func (d *Daemon) postTransaction(w http.ResponseWriter, r *http.Request) {
	body, release, err := d.readBody(w, r)
	defer release()
	if err != nil {
		writeError(w, err)
		return
	}
	var m HTTPMessage
	if err := decodeStrict(body, &m, "begin one transaction per request"); err != nil {
		writeError(w, err)
		return
	}
	pm, err := m.toPB()
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := d.tx.begin(r.Context(), apiHTTP, pm, int64(len(body)))
	if err != nil {
		writeError(w, err)
		return
	}
	res := httpResult(resp.GetResult())
	writeJSON(w, http.StatusOK, HTTPTransaction{TransactionID: resp.GetTransactionId(), Result: &res})
}

func (d *Daemon) endTransactionHTTP(w http.ResponseWriter, r *http.Request, res producerdpb.TransactionResolution) {
	if err := d.tx.end(r.Context(), r.URL.Query().Get("producer_group"), r.PathValue("id"), res); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
