"""The embedded synthetic suite: procedural live faces, prints and replays in four domains O, C, I, M.

The licensed datasets cannot ship, so this stand-in runs anywhere, is deterministic from its seed, and
is rendered straight into the frame cache (``fasbench prepare synthetic``; runs prepare it on demand).

Generative model (every random choice comes from a generator keyed by seed, domain, subject, video
and purpose, so any process renders any video identically):

- Subject: a head ellipsoid with Gaussian features (eye sockets, eyeballs, brow ridges, nose ridge and
  tip, cheeks, lips, chin) whose sizes and places vary per person; skin tone from the domain's range,
  pores and blotches, lips, eyes, brows, hair line and colour, sometimes a beard.
- Live video: the head at a random pose (shift, scale, roll, yaw, pitch) in front of a domain scene,
  lit by one of the domain's room lights (direction, colour, intensity, ambient; Lambert + ambient +
  Blinn-Phong), then moved rigidly frame to frame. Its height field is the true depth map.
- Spoof video (a re-capture): the attacker's photo of the subject (another pose, the domain's photo
  light and backdrop, exposed for the face) reproduced by an instrument and held in front of the camera
  (hand-held placement; the paper's margin or the device's bezel shows for some instruments):
  print = gamut and tone reproduction (paper white, ink black, saturation, gamma), halftone dot screens,
  paper fibres, bending (geometry and shading), gloss, optionally cut-out eyes; replay = display gamma,
  contrast, saturation, black glow and white point, emissive brightness, sub-pixel grid aliasing into
  moire, glare, bezel. The spoof face is scaled to a set brightness relative to a live face under the
  same light. Depth is all zero.
- Camera (every frame, live or spoof): optical blur, the sensor's resolution (how many pixels the face
  spans in the source video; low-resolution crops are upscaled, as a real pipeline does), colour matrix
  and white balance, shot and read noise, gamma and S-curve, JPEG.

The domains (``fasbench_plugins.synthetic.domains``), each a stand-in for one public dataset, with the
first-order cues of its spoofs relative to its live faces:

- O (OULU-NPU): three sharp phone cameras; ceiling, window and frontal light; prints brighter, replays
  darker, both more saturated and warmer with lifted blacks; bright photo backdrops.
- C (CASIA-FASD): low (56 px face), normal and high quality cameras; warm indoor light and a lamp;
  darker, desaturated, crushed blacks; warped and cut photos and an iPad; dark photo backdrops.
- I (Replay-Attack): one 320x240 webcam (90 px face); controlled and adverse light; brighter,
  desaturated, bluer, lifted blacks; paper edges and bezels in view.
- M (MSU-MFSD): a laptop webcam and an Android phone; one office; darker, vivid, warmer, crushed blacks;
  large glossy prints, an iPad and an iPhone.

The first-order cues (brightness, saturation, colour cast, black level, backdrop, lighting direction of
the photos) point different ways in different domains, so a linear classifier on raw pixels that
separates spoofs inside one domain fails on an unseen one; what carries over is what real attacks share:
flatness (no depth, no consistent shading), re-capture texture (halftone, moire, fibres), media edges.
Options: ``domain``, ``seed``, ``subjects``, ``videos_per_type``, ``frames_per_video``, ``crop_size``,
``depth_size`` (see ``SyntheticDataset``).
"""

from fasbench_plugins.synthetic.dataset import SyntheticDataset

from fasbench import hookimpl


@hookimpl
def fasbench_register(registry) -> None:
    registry.add("datasets", SyntheticDataset.name, SyntheticDataset)
