// load_model: metadata → registry → build → weights.
#include "nets/model_io.h"

namespace activeip {

LoadedModel load_model(const std::string& path, Context& ctx) {
  const SafetensorsReader file(path);
  LoadedModel m;
  m.meta = ModelMeta::from_metadata(file.metadata(), path);
  try {
    m.net = make_net(m.meta.net, {m.meta.H, m.meta.W, m.meta.C, m.meta.num_classes, m.meta.channels});
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());  // the registry does not know which file named the net
  }
  m.net->build(ctx, 0);
  load_weights(file, *m.net, ctx);
  return m;
}

}  // namespace activeip
