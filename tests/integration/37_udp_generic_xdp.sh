#!/bin/bash
# The article's seven steps over UDP (30_udp_article.sh) with XDP in
# generic (SKB) mode, as on a driver without native XDP: kmagentd falls
# back to it with a warning, and everything must work the same.
export KMAGENT_XDP_MODE=skb
exec bash "$(dirname "$0")/30_udp_article.sh"
