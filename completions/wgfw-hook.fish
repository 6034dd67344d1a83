# fish completion for wgfw-hook

function __wgfw_hook_configs
    for f in /etc/wireguard/*.conf
        basename $f .conf
    end
end

set -l commands up down plan status check watch confirm release
complete -c wgfw-hook -f
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a up -d 'install the firewall (wg-quick PostUp)'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a down -d 'remove exactly what up installed'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a plan -d 'print what up would do'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a status -d 'what is installed and what it counted'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a check -d 'compare the live firewall with what up installed'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a watch -d 'install as up does, then repair what others undo'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a confirm -d 'keep what up --rollback installed'
complete -c wgfw-hook -n "not __fish_seen_subcommand_from $commands" -a release -d 'remove a kept kill switch'
complete -c wgfw-hook -n "__fish_seen_subcommand_from $commands" -a "(__wgfw_hook_configs)"
complete -c wgfw-hook -s c -l config -r -F -d 'the wg-quick config to read'
complete -c wgfw-hook -l role -x -a 'server client' -d 'server or client'
complete -c wgfw-hook -l wan -x -a '(__fish_print_interfaces)' -d 'the uplink interface'
complete -c wgfw-hook -l policy -x -a 'auto drop accept' -d 'inbound traffic nothing allowed'
complete -c wgfw-hook -l ssh-port -x -a '22 none' -d 'management SSH port'
complete -c wgfw-hook -l admin -x -d 'SSH only from this network'
complete -c wgfw-hook -l allow -x -d 'another host service, e.g. tcp/443'
complete -c wgfw-hook -l handshake-limit -x -a '30/minute 10/second' -d 'new WireGuard flows per source'
complete -c wgfw-hook -l lan -x -d 'a local network peers may reach'
complete -c wgfw-hook -l nat64 -x -d 'the IPv6 prefix of a NAT64 gateway'
complete -c wgfw-hook -l forward -x -d 'publish a WAN port for a service behind the tunnel'
complete -c wgfw-hook -l no-internet -d 'peers reach only this host and the --lan networks'
complete -c wgfw-hook -l peer-to-peer -d 'peers may reach each other'
complete -c wgfw-hook -l no-nat -d 'route instead of masquerading'
complete -c wgfw-hook -l nat6 -d 'masquerade IPv6 too'
complete -c wgfw-hook -l no-log -d 'do not log drops'
complete -c wgfw-hook -l allow-lan -d 'client role: keep the LAN reachable'
complete -c wgfw-hook -l lockdown -d 'client role: keep the kill switch after down'
complete -c wgfw-hook -l rollback -x -d 'revert after SECONDS unless confirm'
complete -c wgfw-hook -l force -d 'install even if it locks out an SSH client'
complete -c wgfw-hook -l repair -d 'check: install the recorded plan again'
complete -c wgfw-hook -l json -d 'status: print JSON'
complete -c wgfw-hook -l follow -d 'watch: wait for the interface, outlive it (wgfw-hook@.service)'
complete -c wgfw-hook -l backend -x -a 'auto nft iptables-nft iptables-legacy' -d 'kernel interface'
complete -c wgfw-hook -l no-watch -d 'up: start no watcher'
complete -c wgfw-hook -s v -l verbose -d 'show each step'
complete -c wgfw-hook -s h -l help -d 'print the help'
complete -c wgfw-hook -s V -l version -d 'print the version'
