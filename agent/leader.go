package agent

import (
	"net/http"
	"time"
)

// LeaderInfo is /api/v1/cluster/leader: the member that plans placement, as
// this agent sees it (see gossip.Leader for how it is chosen).
type LeaderInfo struct {
	// Leader is the leader's node name; empty when no member owns targets.
	Leader string `json:"leader"`
	// Since is when it became leader: the announced instant of a planned
	// change, else when this agent first saw it lead.
	Since time.Time `json:"since"`
	// Started is the leader's process start, the election's criterion.
	Started time.Time `json:"started"`
	// Self is true when this agent leads.
	Self bool `json:"self"`
}

func (a *Agent) leaderInfo() LeaderInfo {
	l := a.node.Leader()
	return LeaderInfo{Leader: l.Name, Since: l.Since, Started: l.Started, Self: l.Self}
}

func (w *webServer) apiLeader(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, w.a.leaderInfo())
}
