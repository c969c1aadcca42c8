#include "importer/image_input.h"

#include <utility>

#include "common/log.h"
#include "formats/containerdisk/layer_reader.h"
#include "sources/registry/reference.h"
#include "sources/registry/registry_client.h"
#include "sources/source.h"

namespace cdi::importer {
namespace {

constexpr size_t kReadBufferSize = 1 << 20;

bool Cancelled(const CancelToken* cancel) { return cancel != nullptr && cancel->cancelled(); }

class SourceInput final : public ImageInput {
 public:
  explicit SourceInput(std::unique_ptr<ByteSource> source) : source_(std::move(source)) {}

  std::optional<uint64_t> size() const override { return source_->size(); }
  std::optional<uint64_t> image_size() const override { return source_->size(); }
  std::string Describe() const override { return source_->Describe(); }

  Result<uint64_t> FeedTo(formats::ByteSink& image, const CancelToken* cancel,
                          const std::function<void(uint64_t)>& after_chunk) override {
    uint64_t bytes_read = 0;
    while (true) {
      if (Cancelled(cancel)) return CancelledError("import cancelled");
      CDI_ASSIGN_OR_RETURN(std::span<const uint8_t> chunk, source_->ReadView(kReadBufferSize));
      if (chunk.empty()) return bytes_read;
      bytes_read += chunk.size();
      CDI_RETURN_IF_ERROR(image.Feed(chunk));
      after_chunk(bytes_read);
    }
  }

 private:
  std::unique_ptr<ByteSource> source_;
};

// Layers that hold no files: an OCI artifact's empty descriptor, configs
// used as layers. Anything named a tar (plain, gzip, zstd, Docker's and
// OCI's names alike) is read.
bool IsFilesystemLayer(const std::string& media_type) {
  return media_type.empty() || media_type.find("tar") != std::string::npos;
}

class RegistryInput final : public ImageInput {
 public:
  RegistryInput(std::unique_ptr<registry::RegistryClient> client, registry::RegistryImage image,
                formats::PipelineOptions layer_options)
      : client_(std::move(client)),
        image_(std::move(image)),
        layer_options_(std::move(layer_options)) {
    // A layer holds more than the disk (a base image's files): only the
    // disk's own bytes are bounded, by the image pipeline they go to.
    layer_options_.max_unwrapped_bytes = UINT64_MAX;
  }

  std::optional<uint64_t> size() const override { return image_.layer_bytes; }
  std::optional<uint64_t> image_size() const override { return disk_size_; }
  std::string Describe() const override { return client_->Describe(); }
  std::vector<std::string> image_env() const override { return image_.config.env; }

  Result<uint64_t> FeedTo(formats::ByteSink& image, const CancelToken* cancel,
                          const std::function<void(uint64_t)>& after_chunk) override {
    uint64_t bytes_read = 0;
    const size_t count = image_.layers.size();
    for (size_t i = 0; i < count; ++i) {
      const registry::Descriptor& layer = image_.layers[i];
      const std::string which = "layer " + std::to_string(i + 1) + " of " + std::to_string(count) +
                                " (" + layer.digest + ")";
      if (!IsFilesystemLayer(layer.media_type)) {
        Logger()->info("{} is not a filesystem layer ({}): skipped", which, layer.media_type);
        continue;
      }
      formats::containerdisk::LayerReader reader(&image, layer_options_);
      CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> blob, client_->OpenBlob(layer));
      Logger()->debug("reading {}, {} bytes", which, layer.size);
      // A layer that cannot be read as a tar before the disk is chosen is
      // skipped, as CDI skips it. Either way, a layer whose bytes look
      // damaged is still read to its end: when its digest does not match,
      // that is the error (the registry's storage or the network altered
      // it), not what the damage looked like to the tar reader or decoder.
      Status unreadable;
      bool fatal = false;
      auto note = [&](Status status) {
        if (status.ok()) return;
        unreadable = std::move(status);
        fatal = reader.decided();
      };
      while (true) {
        if (Cancelled(cancel)) return CancelledError("import cancelled");
        CDI_ASSIGN_OR_RETURN(std::span<const uint8_t> chunk, blob->ReadView(kReadBufferSize));
        if (chunk.empty()) break;
        bytes_read += chunk.size();
        if (unreadable.ok()) {
          note(reader.Feed(chunk));
          if (reader.decided()) disk_size_ = reader.disk_size();
          if (fatal && unreadable.code() != ErrorCode::kCorruptImage) return unreadable;
        }
        after_chunk(bytes_read);
      }
      if (unreadable.ok()) note(reader.Finish());
      if (fatal) return unreadable;
      if (reader.found()) {
        disk_size_ = reader.disk_size();
        Logger()->info("Disk image /{} ({} bytes) found in {} of {}", reader.disk_path(),
                       reader.disk_size(), which, Describe());
        return bytes_read;
      }
      if (!unreadable.ok()) {
        Logger()->warn("{} of {} is not a readable tar layer ({}): skipped", which, Describe(),
                       unreadable.message());
      }
    }
    return InvalidArgumentError(
        "Failed to find VM disk image file in the container image " + Describe() +
        ": none of its " + std::to_string(count) +
        " layers has a file in /disk; a containerDisk holds its disk image as the one file in the "
        "image's /disk directory");
  }

 private:
  std::unique_ptr<registry::RegistryClient> client_;
  registry::RegistryImage image_;
  formats::PipelineOptions layer_options_;
  std::optional<uint64_t> disk_size_;
};

}  // namespace

Result<std::unique_ptr<ImageInput>> OpenImageInput(const SourceSpec& spec,
                                                   const CancelToken* cancel,
                                                   const formats::PipelineOptions& layer_options) {
  if (registry::IsDockerReference(spec.url)) {
    CDI_ASSIGN_OR_RETURN(std::unique_ptr<registry::RegistryClient> client,
                         registry::RegistryClient::Connect(spec, cancel));
    CDI_ASSIGN_OR_RETURN(registry::RegistryImage image, client->ResolveImage());
    Logger()->info(
        "{}: image manifest {}{}, {} layer(s), {} bytes", client->Describe(), image.manifest_digest,
        image.platform.architecture.empty() ? "" : " (" + image.platform.Describe() + ")",
        image.layers.size(), image.layer_bytes);
    return std::unique_ptr<ImageInput>(
        std::make_unique<RegistryInput>(std::move(client), std::move(image), layer_options));
  }
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> source, OpenSource(spec, cancel));
  return InputFromSource(std::move(source));
}

std::unique_ptr<ImageInput> InputFromSource(std::unique_ptr<ByteSource> source) {
  return std::make_unique<SourceInput>(std::move(source));
}

}  // namespace cdi::importer
