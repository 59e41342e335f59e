package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/delivery"
	"github.com/shoal-dev/shoal/gossip"
)

// Delivery is /api/v1/delivery: every remote_write endpoint's backlog and
// how far it has delivered. Peers that took a target over from this agent
// read DeliveredThrough to send their first samples of it only after this
// agent's older ones (a strict receiver refuses them otherwise).
type Delivery struct {
	Endpoints []DeliveryEndpoint `json:"endpoints"`
}

// DeliveryEndpoint is one remote_write endpoint's delivery state.
// DeliveredThrough is a time before which every sample this agent scraped
// for the endpoint has been acknowledged; zero while the backlog from
// before the last start is still going out.
type DeliveryEndpoint struct {
	delivery.EndpointStatus
	DeliveredThrough time.Time `json:"deliveredThrough"`
}

func (a *Agent) delivery() Delivery {
	sts := a.store.d.Status()
	d := Delivery{Endpoints: make([]DeliveryEndpoint, 0, len(sts))}
	for _, st := range sts {
		st.URL = a.showURL(st.URL)
		through, _ := a.store.d.DeliveredThrough(st.Name)
		d.Endpoints = append(d.Endpoints, DeliveryEndpoint{EndpointStatus: st, DeliveredThrough: through})
	}
	return d
}

func (w *webServer) apiDelivery(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.delivery())
}

// predecessorTimeout bounds one question to a peer.
const predecessorTimeout = 2 * time.Second

// predecessors asks peers' /api/v1/delivery how far they have delivered,
// for the delivery queue's handoff holds (delivery.Predecessors). A peer
// that has left is still asked at its last known address: it serves its API
// until its queue is flushed.
type predecessors struct {
	self   string
	peers  func() []gossip.Peer // the current members
	client *http.Client

	mu    sync.Mutex
	addrs map[string]string // last known HTTP address by member name
}

func newPredecessors(a *Agent) *predecessors {
	return &predecessors{
		self:   a.opts.Gossip.Name,
		peers:  func() []gossip.Peer { return a.node.Peers() },
		client: newPeerClient(predecessorTimeout),
		addrs:  map[string]string{},
	}
}

// errNoAddress: the peer is not a member and was never seen as one.
var errNoAddress = errors.New("not a member, and its HTTP address is unknown")

// remember notes every member's HTTP address, so that one that crashes or
// leaves can still be asked at it (it may be restarting there). The agent
// calls it whenever membership changes.
func (p *predecessors) remember() {
	peers := p.peers()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range peers {
		if m.HTTPAddr != "" && !m.Self {
			p.addrs[m.Name] = m.HTTPAddr
		}
	}
}

// DeliveredThrough implements delivery.Predecessors.
func (p *predecessors) DeliveredThrough(ctx context.Context, peer, endpoint string) (delivery.PeerDelivery, error) {
	p.remember()
	p.mu.Lock()
	addr := p.addrs[peer]
	p.mu.Unlock()
	if addr == "" {
		return delivery.PeerDelivery{}, errNoAddress
	}
	d, err := p.get(ctx, addr)
	if errors.Is(err, errCannotAsk) {
		return delivery.PeerDelivery{}, nil
	}
	if err != nil {
		return delivery.PeerDelivery{}, err
	}
	for _, e := range d.Endpoints {
		if e.Name == endpoint {
			blocked := e.LastError != "" || e.WaitingFor != "" && e.WaitingFor != p.self
			return delivery.PeerDelivery{Found: true, Through: e.DeliveredThrough, Blocked: blocked, Acked: e.Acknowledged}, nil
		}
	}
	return delivery.PeerDelivery{}, nil
}

// errCannotAsk: the peer answers but will not tell (its API needs
// credentials, or it is a version without /api/v1/delivery).
var errCannotAsk = errors.New("the peer's /api/v1/delivery cannot be read")

func (p *predecessors) get(ctx context.Context, addr string) (Delivery, error) {
	var d Delivery
	// addr is host:port, checked by gossip; only shoal's own path is added.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/delivery", nil)
	if err != nil {
		return d, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return d, err
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusBadRequest: // plain HTTP to a TLS listener
		return d, fmt.Errorf("%w: %s", errCannotAsk, resp.Status)
	default:
		return d, fmt.Errorf("GET /api/v1/delivery: %s", resp.Status)
	}
	env := Response{Data: &d}
	if err := json.NewDecoder(io.LimitReader(resp.Body, pagePeerBodyLimit)).Decode(&env); err != nil {
		return d, fmt.Errorf("decode /api/v1/delivery: %w", err)
	}
	return d, nil
}
