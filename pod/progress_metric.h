// The import progress metric CDI's controller scrapes from importer pods.
//
// CDI's importer registers a Prometheus counter (pkg/monitoring/metrics/
// cdi-importer) and the controller reads it from https://<pod IP>:8443/metrics
// with the expression (pkg/controller/common/util.go)
//   kubevirt_cdi_import_progress_total\{ownerUID="<uid>"\} (\d{1,3}\.?\d*)
// then shows it as "<value with two decimals>%" in the DataVolume's status.
#ifndef CDI_POD_PROGRESS_METRIC_H_
#define CDI_POD_PROGRESS_METRIC_H_

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

namespace cdi::pod {

inline constexpr std::string_view kProgressMetricName = "kubevirt_cdi_import_progress_total";

// Formats a percentage as the sample value: the shortest decimal that reads
// back as the same double, never in exponent form (Go's Prometheus client
// writes 1e-05 for tiny values, which the controller's expression misreads),
// e.g. "0", "12.5", "33.333333333333336", "100".
std::string FormatPercent(double percent);

// The progress of one import in percent, 0 to 100, never decreasing.
// Thread-safety: Update from one thread, Exposition from any.
class ProgressMetric {
 public:
  explicit ProgressMetric(std::string owner_uid);

  // `fraction` in [0, 1] (Progress::Fraction()); nullopt (not known yet)
  // and values below the current one leave the metric as it is.
  void Update(std::optional<double> fraction);
  double percent() const { return percent_.load(std::memory_order_relaxed); }

  // The Prometheus text exposition (format 0.0.4) of the metric:
  //   # HELP kubevirt_cdi_import_progress_total The import progress in percentage
  //   # TYPE kubevirt_cdi_import_progress_total counter
  //   kubevirt_cdi_import_progress_total{ownerUID="<uid>"} <percent>
  std::string Exposition() const;

 private:
  const std::string owner_uid_;
  std::atomic<double> percent_{0.0};
};

}  // namespace cdi::pod

#endif  // CDI_POD_PROGRESS_METRIC_H_
