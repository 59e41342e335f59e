package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// killWait bounds how long a SIGKILLed process group may take to be reaped;
// the kernel needs milliseconds.
const killWait = 10 * time.Second

// NewProcess describes a process; it starts nothing.
func NewProcess(name, bin, logPath string) *Process {
	return &Process{name: name, bin: bin, logPath: logPath}
}

// Process is the harness' one process type: a child process in its own process group, with stdout and
// stderr appended to a log file. It can be stopped and started again with
// new arguments, killed (SIGKILL, as a crash) and asked for its last exit
// status. Its methods are safe for concurrent use. Integration tests use it
// for Consul, the receiver and shoal agents.
type Process struct {
	name    string
	bin     string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been reaped
	// state is the last exited process's status, nil while one runs.
	state *os.ProcessState
}

// Start runs the process with args. It returns once the process has been
// started, not once it is ready.
func (p *Process) Start(args []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	// The child inherits its own copy of the descriptor, so ours can be
	// closed right after Start and no copying goroutine is needed.
	defer func() { _ = logf.Close() }()
	fmt.Fprintf(logf, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.bin, strings.Join(args, " "))

	cmd := exec.Command(p.bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the status is read from cmd.ProcessState
		close(done)
	}()
	p.cmd, p.done, p.state = cmd, done, nil
	return nil
}

// Exited returns a channel closed when the running process exits, or nil
// when none runs.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Pid returns the process ID of the running process, or 0 when none runs.
// The process leads its own process group, so it is the component itself,
// e.g. for reading its CPU time and memory from /proc.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether a process was started and has not been reaped by
// Stop or Kill. A process that exited on its own still counts until then.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Stop sends SIGTERM to the process group and waits up to grace, then sends
// SIGKILL. It reports whether the process exited by itself within grace. It
// is a no-op (true) when no process runs.
func (p *Process) Stop(grace time.Duration) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return true, nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return false, err
	}
	select {
	case <-p.done:
		p.reap()
		return true, nil
	case <-time.After(grace):
	}
	p.AppendLog(fmt.Sprintf("=== %s ignored SIGTERM for %v and is killed", p.name, grace))
	if err := p.killLocked(); err != nil {
		return false, err
	}
	return false, nil
}

// Kill sends SIGKILL to the process group and waits for the process. It is a
// no-op when no process runs.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.killLocked()
}

func (p *Process) killLocked() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-time.After(killWait):
		return fmt.Errorf("%s not reaped %v after SIGKILL", p.name, killWait)
	}
	p.reap()
	return nil
}

// signal signals the whole process group; the child leads its own (see
// sysProcAttr). A group that is already gone is not an error.
func (p *Process) signal(sig syscall.Signal) error {
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send %v to process group %d of %s: %w", sig, pgid, p.name, err)
	}
	return nil
}

// reap records the exit status of the exited process and forgets it.
func (p *Process) reap() {
	p.state = p.cmd.ProcessState
	p.AppendLog(fmt.Sprintf("=== %s: %s exited: %v", time.Now().Format(time.RFC3339Nano), p.name, p.state))
	p.cmd, p.done = nil, nil
}

// Name returns the name the process was described with.
func (p *Process) Name() string { return p.name }

// LogPath returns the file the process logs to.
func (p *Process) LogPath() string { return p.logPath }

// LastExit returns the status of the last process that stop or kill reaped,
// or nil.
func (p *Process) LastExit() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// AppendLog appends a line to the log file, e.g. to mark a test event.
func (p *Process) AppendLog(line string) {
	f, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	fmt.Fprintln(f, line)
}

// LogTail returns the end of the log file.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
