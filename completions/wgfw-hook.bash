# bash completion for wgfw-hook                            -*- shell-script -*-

_wgfw_hook_configs() {
	local f
	for f in /etc/wireguard/*.conf; do
		[[ -e $f ]] || continue
		f=${f##*/}
		printf '%s\n' "${f%.conf}"
	done
}

_wgfw_hook_running() {
	local i
	for i in /sys/class/net/*; do
		[[ -e $i/wireguard || $(cat "$i/type" 2>/dev/null) == 65534 ]] && printf '%s\n' "${i##*/}"
	done
}

_wgfw_hook() {
	local cur prev words cword
	_init_completion || return
	local commands="up down plan status check watch confirm release"
	local options="--config --role --wan --policy --ssh-port --admin --allow --handshake-limit --lan --nat64 --forward --no-internet --peer-to-peer --no-nat --nat6 --no-log --allow-lan --lockdown --no-watch --rollback --force --repair --json --follow --backend --verbose --help --version"

	case $prev in
	--role) COMPREPLY=($(compgen -W "server client" -- "$cur")); return ;;
	--policy) COMPREPLY=($(compgen -W "auto drop accept" -- "$cur")); return ;;
	--backend) COMPREPLY=($(compgen -W "auto nft iptables-nft iptables-legacy" -- "$cur")); return ;;
	--ssh-port) COMPREPLY=($(compgen -W "22 none" -- "$cur")); return ;;
	--handshake-limit) COMPREPLY=($(compgen -W "30/minute 10/second" -- "$cur")); return ;;
	--allow) COMPREPLY=($(compgen -W "tcp/ udp/" -- "$cur")); compopt -o nospace; return ;;
	-c | --config) _filedir conf; return ;;
	--wan) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
	--admin | --lan | --nat64 | --forward | --rollback) return ;;
	esac

	if ((cword == 1)); then
		COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
		return
	fi
	if ((cword == 2)) && [[ $cur != -* ]]; then
		case ${words[1]} in
		up | plan | watch) COMPREPLY=($(compgen -W "$(_wgfw_hook_configs)" -- "$cur")) ;;
		down | status | check | confirm | release) COMPREPLY=($(compgen -W "$(_wgfw_hook_running) $(_wgfw_hook_configs)" -- "$cur")) ;;
		esac
		return
	fi
	[[ $cur == -* ]] && COMPREPLY=($(compgen -W "$options" -- "$cur"))
}
complete -F _wgfw_hook wgfw-hook
