// Command loadtool provides the helpers of bench/load.sh: a counting
// upstream, free loopback ports, signed test bodies and a probe that checks
// that an unsigned request gets its response before its body is sent.
//
//	loadtool upstream -port-file FILE
//	loadtool freeports N
//	loadtool body -size BYTES -in testdata/smart_invite.json
//	loadtool sign -secret SECRET FILE
//	loadtool probe -addr 127.0.0.1:PORT -path /cb -size BYTES [-expect]
//
// Every address it listens on or dials is on the loopback interface.
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtool upstream|freeports|body|sign|probe [flags]")
		os.Exit(2)
	}
	commands := map[string]func([]string) error{
		"upstream":  runUpstream,
		"freeports": runFreePorts,
		"body":      runBody,
		"sign":      runSign,
		"probe":     runProbe,
	}
	command, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "loadtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := command(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadtool "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

// runUpstream serves 200 to every request after reading its body, and
// GET /stats with the number of requests and body bytes received, so the
// load script can tell which requests reached the upstream.
func runUpstream(args []string) error {
	flags := flag.NewFlagSet("upstream", flag.ExitOnError)
	portFile := flags.String("port-file", "", "file to write the chosen port to")
	flags.Parse(args)

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := listener.Addr().(*net.TCPAddr).Port
	if *portFile != "" {
		if err := os.WriteFile(*portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
			return err
		}
	}

	var requests, bodyBytes atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stats" {
			fmt.Fprintf(w, "requests=%d body_bytes=%d\n", requests.Load(), bodyBytes.Load())
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		requests.Add(1)
		bodyBytes.Add(n)
		w.Write([]byte("ok\n"))
	})
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	return server.Serve(listener)
}

// runFreePorts prints n loopback TCP ports that were free a moment ago.
func runFreePorts(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: freeports N")
	}
	count, err := strconv.Atoi(args[0])
	if err != nil || count < 1 || count > 16 {
		return fmt.Errorf("invalid port count %q, want 1 to 16", args[0])
	}

	// All listeners stay open until every port is chosen, so the ports
	// are distinct.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// runBody writes the Smart Invite example with its first comment padded
// so that the body is exactly -size bytes, to stdout.
func runBody(args []string) error {
	flags := flag.NewFlagSet("body", flag.ExitOnError)
	size := flags.Int("size", 0, "body size in bytes; 0 leaves the example unchanged")
	in := flags.String("in", "testdata/smart_invite.json", "example body")
	flags.Parse(args)

	example, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	if *size == 0 {
		_, err := os.Stdout.Write(example)
		return err
	}

	const comment = `"example comment"`
	if !bytes.Contains(example, []byte(comment)) {
		return fmt.Errorf("%s has no %s to pad", *in, comment)
	}
	padding := *size - len(example)
	if padding < 0 {
		return fmt.Errorf("-size %d is smaller than the example's %d bytes", *size, len(example))
	}
	padded := `"example comment` + strings.Repeat("x", padding) + `"`
	body := bytes.Replace(example, []byte(comment), []byte(padded), 1)
	_, err = os.Stdout.Write(body)
	return err
}

// runSign prints the Cronofy-HMAC-SHA256 value of a file under a secret.
func runSign(args []string) error {
	flags := flag.NewFlagSet("sign", flag.ExitOnError)
	secret := flags.String("secret", "", "client secret")
	flags.Parse(args)
	if flags.NArg() != 1 || *secret == "" {
		return errors.New("usage: sign -secret SECRET FILE")
	}

	body, err := os.ReadFile(flags.Arg(0))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(*secret))
	mac.Write(body)
	fmt.Println(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return nil
}

// runProbe sends the headers of an unsigned POST that declares a -size
// byte body, sends none of the body, and waits for the response. A final
// response that arrives while no body byte has been sent shows that the
// server rejected the request without reading its body. With -expect the
// request carries Expect: 100-continue, and a 100 Continue is a failure:
// it would ask the client to upload.
func runProbe(args []string) error {
	flags := flag.NewFlagSet("probe", flag.ExitOnError)
	addr := flags.String("addr", "", "loopback host:port of the guarded route")
	path := flags.String("path", "/", "request path")
	size := flags.Int("size", 1<<20, "declared body size in bytes")
	expect := flags.Bool("expect", false, "send Expect: 100-continue")
	timeout := flags.Duration("timeout", 5*time.Second, "how long to wait for the response")
	flags.Parse(args)

	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback address", *addr)
	}

	conn, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		return err
	}
	defer conn.Close()

	var request strings.Builder
	fmt.Fprintf(&request, "POST %s HTTP/1.1\r\nHost: %s\r\n", *path, *addr)
	fmt.Fprintf(&request, "Content-Type: application/json\r\nContent-Length: %d\r\n", *size)
	if *expect {
		request.WriteString("Expect: 100-continue\r\n")
	}
	request.WriteString("\r\n")

	start := time.Now()
	if _, err := io.WriteString(conn, request.String()); err != nil {
		return err
	}
	conn.SetReadDeadline(start.Add(*timeout))
	status, err := bufio.NewReader(conn).ReadString('\n')
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("no response within %s with 0 of %d body bytes sent: %v", *timeout, *size, err)
	}

	status = strings.TrimSpace(status)
	fmt.Printf("status=%q body_bytes_sent=0 declared=%d elapsed_ms=%.2f\n", status, *size, float64(elapsed.Microseconds())/1000)
	if strings.Contains(status, " 100 ") {
		return errors.New("server sent 100 Continue to an unsigned request")
	}
	if !strings.Contains(status, " 401 ") {
		return fmt.Errorf("got %q, want a 401 status line", status)
	}
	return nil
}
