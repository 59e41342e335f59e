package placement_test

import (
	"fmt"

	"github.com/shoal-dev/shoal/gossip/ring"
	"github.com/shoal-dev/shoal/gossip/ring/placement"
)

// One member computes a plan from the sizes every agent reports and gossips
// its encoding; every agent then asks the plan, with its own ring, who owns a
// target. Targets the plan does not list are placed by plain rendezvous.
func Example() {
	members := ring.Names("agent-a", "agent-b", "agent-c")
	var targets []placement.Target
	for i := range 30 {
		series := 1000.0
		if i < 3 {
			series = 8000 // three large exporters
		}
		targets = append(targets, placement.Target{Key: ring.Key(fmt.Sprintf("node\x00http://10.0.0.%d:9100/metrics", i)), Series: series})
	}
	res, err := placement.Compute(placement.DefaultConfig(), placement.Input{Members: members, Targets: targets})
	if err != nil {
		panic(err)
	}
	fmt.Printf("rendezvous max/mean %.2f, plan max/mean %.2f\n", res.Before.MaxMean, res.After.MaxMean)
	fmt.Printf("%d overrides, %d bytes to gossip\n", res.Plan.Len(), res.Plan.Size())

	// A peer decodes the plan and places targets with its own ring.
	enc, _ := res.Plan.MarshalBinary()
	plan, err := placement.Decode(enc)
	if err != nil {
		panic(err)
	}
	r := ring.MustNew(members...)
	for _, o := range plan.Overrides() {
		hrw, _ := r.Owner(o.Key)
		owner, _ := plan.Owner(r, o.Key)
		fmt.Printf("%#016x: %s instead of %s (%s)\n", o.Key, owner, hrw, o.Reason)
	}

	// The sizes change a little: the plan stays as it is.
	for i := range targets {
		targets[i].Series *= 1.05
	}
	again, _ := placement.Compute(placement.DefaultConfig(), placement.Input{Members: members, Targets: targets, Previous: plan, PreviousMembers: members})
	fmt.Println("changed:", again.Changed)
	// Output:
	// rendezvous max/mean 1.65, plan max/mean 1.00
	// 5 overrides, 64 bytes to gossip
	// 0x01d1fbde373d23d5: agent-b instead of agent-a (balance)
	// 0x082b14c287bb5224: agent-b instead of agent-c (balance)
	// 0xe4a320284d9457a6: agent-b instead of agent-c (balance)
	// 0xe9e426c0abbe37b6: agent-b instead of agent-c (balance)
	// 0xf28e24c8d50a2a32: agent-b instead of agent-c (balance)
	// changed: false
}
