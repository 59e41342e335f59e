package agent

import (
	"context"
	"time"
)

// readyPoll is how often the registration actor looks at readiness: a flip
// is pushed to Consul within this delay instead of at the next TTL renewal
// (TTL/3, 5 s by default), so agents joining through Consul find a new
// agent, and stop choosing a leaving one, about at once.
const readyPoll = 200 * time.Millisecond

// runRegistration keeps the agent registered in Consul until ctx is
// cancelled. sd.Registration renews its check on a TTL/3 ticker; it is
// restarted whenever readiness changes so that the check follows at once.
// It does not deregister: the shutdown sequence does, after it returns.
func (a *Agent) runRegistration(ctx context.Context) error {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for ctx.Err() == nil {
		was := a.Ready()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.regist.Run(rctx, a.Ready) }()
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case err := <-done:
				cancel()
				return err
			case <-tick.C:
				if a.Ready() != was {
					break wait
				}
			}
		}
		cancel()
		if err := <-done; err != nil {
			return err
		}
	}
	return nil
}

// watchPeers follows the Consul services of the consul+ join specs and asks
// the gossip node to rejoin whenever their passing instances change, so a
// new agent is joined as soon as it passes its check rather than at the
// next --cluster.rejoin-interval tick (or never, with rejoining disabled).
// Agents that started at the same time, each alone, merge this way. It
// returns nil when ctx is cancelled.
func (a *Agent) watchPeers(ctx context.Context) error {
	done := make(chan struct{}, len(a.peerWatch))
	for _, p := range a.peerWatch {
		go func() {
			defer func() { done <- struct{}{} }()
			p.Watch(ctx, func(peers []string) {
				a.logger.Debug("consul peers changed, rejoining", "peers", len(peers))
				a.node.TriggerRejoin()
			})
		}()
	}
	for range a.peerWatch {
		<-done
	}
	return nil
}
