# Throughput and p99 latency by target, one cluster per load cell.
# Input: the plot.dat that bench/report.py writes (cell, 8 throughputs in
# kops/s, 8 p99s in us; "-" = not measured).  Called by scripts/bench.sh:
#   gnuplot -e "datafile='build/bench/plot.dat'; outfile='docs/benchmarks.png'" bench/benchmarks.gnuplot
if (!exists("datafile")) datafile = 'build/bench/plot.dat'
if (!exists("outfile")) outfile = 'docs/benchmarks.png'

set terminal pngcairo size 1200,900 font ",10"
set output outfile
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical
set xtics nomirror
set multiplot layout 2,1 title "kmagent vs memcached direct vs nutcracker (medians)"

set title "throughput"
set ylabel "kops/s"
set yrange [0:*]
plot for [i=2:9] datafile using i:xtic(1) title columnheader(i)

set title "p99 latency"
set ylabel "us (log)"
set logscale y
set yrange [*:*]
plot for [i=10:17] datafile using i:xtic(1) title columnheader(i-8)

unset multiplot
