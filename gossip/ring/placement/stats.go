package placement

// Stats is the load of one placement of targets on members.
type Stats struct {
	// Members holds one entry per member, sorted by name.
	Members []MemberLoad
	// Series is the total series over all targets, Targets their number.
	Series  int64
	Targets int
	// Oversized counts the targets larger than the fair share of the member
	// they sit on; they are exempt from balance (see the package comment).
	Oversized int
	// FairPerWeight is the fair share of a member of weight 1, after the
	// oversized targets and their members are set aside.
	FairPerWeight float64
	// MaxMean is the largest series per weight of any member over the mean
	// series per weight: the imbalance figure, 1.0 being perfect. It counts
	// every member, oversized targets included.
	MaxMean float64
	// Imbalance is the largest Series/Fair of the members that are subject
	// to the bound (those that hold more than one target); the plan keeps it
	// at or below 1+Bound. It equals MaxMean when no target is oversized and
	// no member holds a single target, and is 0 when every member holds at
	// most one.
	Imbalance float64
	// Within reports whether every member subject to the bound is within it.
	Within bool
}

// MemberLoad is the load of one member.
type MemberLoad struct {
	Name   string
	Weight float64
	// Series and Targets are what the member holds.
	Series  int64
	Targets int
	// Fair is the member's fair share in series: FairPerWeight times Weight.
	Fair float64
	// Oversized reports that the member holds an oversized target.
	Oversized bool
}

// stats measures assign.
func (p *problem) stats(assign []int32) Stats {
	sh := p.share(assign, false)
	st := Stats{Members: make([]MemberLoad, len(p.names)), Targets: len(p.keys), Oversized: sh.count, FairPerWeight: sh.q, Within: true}
	for m, n := range p.names {
		st.Members[m] = MemberLoad{Name: n, Weight: p.weights[m], Fair: sh.fair(p.weights[m]), Oversized: sh.holder[m]}
	}
	for i, m := range assign {
		st.Members[m].Series += p.sizes[i]
		st.Members[m].Targets++
		st.Series += p.sizes[i]
	}
	weight := 0.0
	for _, w := range p.weights {
		weight += w
	}
	mean := float64(st.Series) / weight
	for m, l := range st.Members {
		if mean > 0 {
			st.MaxMean = max(st.MaxMean, float64(l.Series)/l.Weight/mean)
		}
		if l.Targets < 2 {
			continue
		}
		if l.Fair > 0 {
			st.Imbalance = max(st.Imbalance, float64(l.Series)/l.Fair)
		}
		if l.Series > sh.capacity(p.weights[m], p.cfg.Bound) {
			st.Within = false
		}
	}
	return st
}
