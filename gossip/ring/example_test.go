package ring_test

import (
	"fmt"

	"github.com/shoal-dev/shoal/gossip/ring"
)

// Every agent builds the same ring from the live members it sees and asks it
// who owns each target; no coordinator is involved.
func Example() {
	r, err := ring.New(ring.Names("agent-a", "agent-b", "agent-c"))
	if err != nil {
		panic(err)
	}
	key := ring.Key("node\x00http://10.0.0.7:9100/metrics")

	owner, _ := r.Owner(key)
	fmt.Println("owner:", owner)
	fmt.Println("owners with replication 2:", r.Owners(nil, key, 2))

	// agent-c leaves: its keys move, each to the member that ranked second
	// for it; the keys of agent-a and agent-b do not move at all.
	r2, _ := ring.New(ring.Names("agent-a", "agent-b"))
	owner2, _ := r2.Owner(key)
	fmt.Println("after agent-c left:", owner2)
	fmt.Printf("same placement: %v\n", r.Digest() == r2.Digest())
	// Output:
	// owner: agent-c
	// owners with replication 2: [agent-c agent-a]
	// after agent-c left: agent-a
	// same placement: false
}
