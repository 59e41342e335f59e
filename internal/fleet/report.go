package fleet

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is what one scenario measured, from the start of its window (the
// fleet converged) to a few intervals after its last change.
type Row struct {
	Scenario string
	Targets  int
	Interval time.Duration
	Window   time.Duration
	// Moved is the number of targets whose scraper changed at least once;
	// Moves counts the changes (a target that moves away and back counts
	// two). From the agents' /api/v1/targets, polled every observeInterval.
	Moved, Moves int
	// MaxDouble is the longest time one target was listed by two agents.
	MaxDouble time.Duration
	// MaxGap is the largest distance between two samples of a target at
	// the receiver.
	MaxGap time.Duration
	// GapTargets have a gap above 1.5 intervals (at least one missed
	// scrape); BigGapTargets above 2.5 (more than one).
	GapTargets, BigGapTargets int
	// Duplicates are samples closer than half an interval to the previous
	// one, or whose counter did not rise (e2e.Stats.Duplicates).
	Duplicates int
	// Missing are counter values the receiver never stored across a gap:
	// slots whose sample was lost or rejected (e2e.Stats.Missing).
	Missing int
	// Fenced are counter values skipped without a gap: scrapes of a slot
	// that has another scraper's sample, the overlap of a fenced handoff.
	Fenced int
	// Stale counts the staleness markers the receiver stored for the
	// targets' series (every one of them, not only the counter). The farm's
	// targets never go away, so each marker is spurious: a scrape loop
	// stopped for a move wrote the end of its series.
	Stale int
	// RcvOutOfOrder is the receiver's TSDB out-of-order counter,
	// RcvRejected its remote-write 400 answers, RcvRejectLogs the samples
	// it logged as rejected.
	RcvOutOfOrder, RcvRejected float64
	RcvRejectLogs              int
	// ShoalFailed and ShoalDropped are the agents' remote-storage failed
	// and dropped samples, summed over agents and restarts.
	ShoalFailed, ShoalDropped float64
	// Agree is the longest time, over the scenario's changes, from the
	// change until every agent agreed on the members and the ring;
	// Converge until they also scraped exactly their shares.
	Agree, Converge time.Duration
	// Unscraped are the targets without a sample in the window's last two
	// intervals; every target should be scraped again by then.
	Unscraped []string
}

// KeyValues formats the row as greppable key=value pairs.
func (r Row) KeyValues() string {
	return fmt.Sprintf("scenario=%s targets=%d interval_s=%g window_s=%.0f moved=%d moves=%d max_double_s=%.1f max_gap_s=%.2f gap_targets=%d big_gap_targets=%d duplicates=%d missing=%d fenced=%d stale=%d rcv_ooo=%g rcv_400=%g rcv_reject_logs=%d shoal_failed=%g shoal_dropped=%g agree_s=%.1f converge_s=%.1f",
		r.Scenario, r.Targets, r.Interval.Seconds(), r.Window.Seconds(), r.Moved, r.Moves, r.MaxDouble.Seconds(), r.MaxGap.Seconds(), r.GapTargets, r.BigGapTargets,
		r.Duplicates, r.Missing, r.Fenced, r.Stale, r.RcvOutOfOrder, r.RcvRejected, r.RcvRejectLogs, r.ShoalFailed, r.ShoalDropped, r.Agree.Seconds(), r.Converge.Seconds())
}

// Table formats rows as an aligned table with a legend.
func Table(rows []Row) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttargets\tiv_s\tmoved\tmoves\tdouble_s\tmax_gap_s\tgap>1.5iv\tgap>2.5iv\tdup\tmissing\tfenced\tstale\trcv_ooo\trcv_400\trcv_rej_log\tshoal_failed\tagree_s\tconverge_s\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%g\t%d\t%d\t%.1f\t%.2f\t%d\t%d\t%d\t%d\t%d\t%d\t%g\t%g\t%d\t%g\t%.1f\t%.1f\t\n",
			r.Scenario, r.Targets, r.Interval.Seconds(), r.Moved, r.Moves, r.MaxDouble.Seconds(), r.MaxGap.Seconds(), r.GapTargets, r.BigGapTargets,
			r.Duplicates, r.Missing, r.Fenced, r.Stale, r.RcvOutOfOrder, r.RcvRejected, r.RcvRejectLogs, r.ShoalFailed, r.Agree.Seconds(), r.Converge.Seconds())
	}
	_ = tw.Flush()
	b.WriteString(`moved/moves: targets whose scraper changed / changes (away and back = 2), from /api/v1/targets every 0.5 s
double_s: longest time one target was listed by two agents; max_gap_s: largest distance between two samples of a target
gap>1.5iv / gap>2.5iv: targets that missed at least one / more than one scrape; dup: samples < 0.5 iv apart or not rising
missing: slots without a sample (lost or rejected scrapes); fenced: overlap scrapes the fence discarded (nothing lost);
stale: staleness markers stored for the targets' series (read raw by remote read; the targets never go away, so none is wanted); rcv_ooo: receiver TSDB out-of-order counter;
rcv_400: remote-write requests the receiver refused (each drops a whole batch); rcv_rej_log: samples it logged as refused
shoal_failed: agents' prometheus_remote_storage_samples_failed_total; agree_s / converge_s: longest time from a change
until every agent agreed on the ring / also scraped exactly its share
`)
	return b.String()
}
