"""The MNI152 2009 T1 template and its brain-tissue labels, from files shipped inside nilearn.

Real MRI (an average of 152 brains), 1 mm, 197x233x189, RAS. No network: nilearn bundles these files.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nilearn import datasets

from engines.volume import Volume

# Label values of `load_mni152_tissue_labels`; index = label.
TISSUE_NAMES = ("background", "CSF", "grey matter", "white matter")


def _bundled_path(img: nib.Nifti1Image) -> str:
    return str(img.get_filename() or "nilearn:MNI152")


def load_mni152_t1() -> Volume:
    """The T1 template as a float32 Volume (intensities as shipped, 0..~8000), modality "MR"."""
    img = datasets.load_mni152_template(resolution=1)
    return Volume(
        data=np.asarray(img.get_fdata(dtype=np.float32)),
        affine=img.affine,
        modality="MR",
        meta={"description": "MNI152 2009 T1 template (nilearn bundled file)"},
        source=_bundled_path(img),
    )


def load_mni152_tissue_labels() -> Volume:
    """Tissue labels on the T1's grid: argmax of GM / WM / CSF probabilities inside the brain mask.

    CSF probability is taken as brain mask minus GM minus WM (clipped at 0), as DESIGN §5 states;
    voxels outside the mask are 0 (background). Labels index `TISSUE_NAMES`.
    """
    gm_img = datasets.load_mni152_gm_template(resolution=1)
    gm = gm_img.get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32) > 0.5
    csf = np.clip(1.0 - gm - wm, 0.0, None)
    labels = (np.argmax(np.stack([csf, gm, wm]), axis=0) + 1).astype(np.uint8)
    labels[~mask] = 0
    return Volume(
        data=labels,
        affine=gm_img.affine,
        meta={"description": "MNI152 tissue labels (argmax of nilearn's GM/WM maps; CSF = brain - GM - WM)",
              "label_names": list(TISSUE_NAMES)},
        source=_bundled_path(gm_img),
    )
