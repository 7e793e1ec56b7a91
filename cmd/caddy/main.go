// Command caddy is Caddy with its standard modules plus the Cronofy callback
// guard, so the module can be run and tested without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/callbackguard/caddy-cronofy"
)

func main() {
	caddycmd.Main()
}
